"""The control socket of one sandboxed child: its guards report refusals here and ask for exec-time decisions.

One listener per child, on a unix socket in the child's private host directory, bound read-only into the sandbox at
``/dev/llmmixer/control``. A request is a 4-byte little-endian length, then NUL-terminated fields:
``kind, program, rule, exe, cwd, argc, argv..., [env...]`` (``kind`` is ``refused`` or ``ask``).

- ``refused``: recorded (:attr:`Control.refusals`); the runner turns it into a ``policy`` error for ``run`` and a
  ``pty.refused`` event for sessions.
- ``ask``: ``decide(request)`` answers. On allow the answer is ``A`` with a descriptor of the real binary
  (``O_PATH``, opened on the host, where the guard does not cover it), which the guard executes in place; on deny it
  is ``D`` and the message the guard prints. What is checked is the argv that will run, so a program speaking this
  protocol itself gains nothing over the guard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

__all__ = ["GuardRequest", "Decision", "Control"]

log = logging.getLogger("llmmixer.pty.control")

MAX_REQUEST = 1 << 20
MAX_REFUSALS = 100


@dataclass(frozen=True, slots=True)
class GuardRequest:
    kind: str
    program: str
    rule: str
    exe: str
    cwd: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: bytes) -> GuardRequest:
        """Raises: ValueError for a malformed request."""
        fields = [f.decode("utf-8", errors="surrogateescape") for f in payload.split(b"\0")]
        if fields and fields[-1] == "":
            fields.pop()
        kind, program, rule, exe, cwd, argc = fields[:6]
        count = int(argc)
        argv = tuple(fields[6:6 + count])
        if len(argv) != count:
            raise ValueError("argv is cut short")
        env = {}
        for item in fields[6 + count:]:
            name, sep, value = item.partition("=")
            if sep:
                env[name] = value
        return cls(kind=kind, program=program, rule=rule, exe=exe, cwd=cwd, argv=argv, env=env)

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "rule": self.rule, "argv": list(self.argv)[:32], "cwd": self.cwd}


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    message: str = ""
    real: str | None = None  # host path of the binary to hand over when allowed
    rule: str | None = None  # the rule that refused


class Control:
    def __init__(self, path: str, decide: Callable[[GuardRequest], Awaitable[Decision]] | None = None,
                 on_refusal: Callable[[GuardRequest], None] | None = None) -> None:
        self.path = path
        self.decide = decide
        self.on_refusal = on_refusal
        self.refusals: list[GuardRequest] = []
        self._listener: anyio.abc.SocketListener | None = None

    async def open(self) -> None:
        self._listener = await anyio.create_unix_listener(self.path, mode=0o600)

    async def serve(self) -> None:
        """Until cancelled (or :meth:`aclose`)."""
        assert self._listener is not None
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    stream = await self._listener.accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                    return
                tg.start_soon(self._handle, stream)

    async def aclose(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.aclose()
            self._listener = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    async def _read_request(self, stream: anyio.abc.SocketStream) -> bytes | None:
        data = b""
        while len(data) < 4:
            chunk = await stream.receive(4 - len(data))
            data += chunk
        (size,) = struct.unpack("<I", data[:4])
        if size > MAX_REQUEST:
            return None
        payload = bytearray()
        while len(payload) < size:
            payload += await stream.receive(min(65536, size - len(payload)))
        return bytes(payload)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(10):
                    payload = await self._read_request(stream)
                if payload is None:
                    return
                request = GuardRequest.parse(payload)
            except (ValueError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
                log.info("malformed guard request: %s", exc)
                return
            if request.kind == "refused":
                self._refusal(request)
                return
            if request.kind != "ask":
                return
            decision = Decision(False, "llmmixer: refused: this runner takes no exec-time questions")
            if self.decide is not None:
                try:
                    decision = await self.decide(request)
                except Exception as exc:  # noqa: BLE001 - a failure to decide is a refusal, never a crash
                    log.warning("exec-time decision failed: %s", exc)
                    decision = Decision(False, f"llmmixer: {request.program} refused: {exc}")
            await self._answer(stream, decision)
            if not decision.allow:
                self._refusal(dataclasses.replace(request, rule=decision.rule or request.rule, env={}))

    def _refusal(self, request: GuardRequest) -> None:
        if len(self.refusals) < MAX_REFUSALS:
            self.refusals.append(request)
            if self.on_refusal is not None:
                self.on_refusal(request)

    async def _answer(self, stream: anyio.abc.SocketStream, decision: Decision) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            if decision.allow and decision.real:
                fd = os.open(decision.real, os.O_PATH | os.O_CLOEXEC)
                try:
                    assert isinstance(stream, anyio.abc.UNIXSocketStream)
                    await stream.send_fds(b"A", [fd])
                finally:
                    os.close(fd)
            else:
                await stream.send(b"D" + decision.message.encode()[:4000])
