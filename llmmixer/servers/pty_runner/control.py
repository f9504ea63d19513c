"""The control socket of one sandboxed child: its guards report refusals here and ask for exec-time decisions.

One listener per child, on a unix socket in the child's private host directory, bound read-only into the sandbox at
``/dev/llmmixer/control``. A request is a 4-byte little-endian length, then NUL-terminated fields:
``kind, program, rule, exe, cwd, argc, argv..., [env...]``.

Only a guard is answered. The peer's pid (``SO_PEERCRED``) leads to its executable, whose inode must be one of the
guard files (``identify``), and the peer must not be traced; the guard file, not the request, says which rule it stands for and whether it refuses
or asks. Anything else that connects (a program of the child's speaking this protocol) is refused and recorded.

- a ``refuse`` guard: recorded (:attr:`Control.refusals`); the runner turns it into a ``policy`` error for ``run``
  and a ``pty.refused`` event for sessions; the answer is ``D`` and the message the guard prints.
- an ``ask`` guard: ``decide(request)`` answers. On allow the answer is ``A`` with a descriptor (``O_PATH``, opened
  on the host) of an exec-only copy of the real program, which the guard executes in place with the argv it sent:
  the descriptor goes to nothing but a guard, whose memory nothing in the sandbox can read or change.

A child holds at most :data:`MAX_CONNECTIONS` connections of at most :data:`MAX_REQUEST` bytes each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
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
MAX_CONNECTIONS = 8
NOT_A_GUARD = "builtin: only a guard may ask the runner"
Orders = tuple[str, str, str]  # (refuse | ask, program, rule) of one guard file


def _traced(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("TracerPid:"):
                    return line.split()[1] != "0"
    except OSError:
        return True
    return True


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
                 on_refusal: Callable[[GuardRequest], None] | None = None,
                 identify: Callable[[int], Orders | None] | None = None) -> None:
        self.path = path
        self.decide = decide
        self.on_refusal = on_refusal
        self.identify = identify
        self._open_connections = 0
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
                if self._open_connections >= MAX_CONNECTIONS:
                    await stream.aclose()
                    continue
                self._open_connections += 1
                tg.start_soon(self._handle_counted, stream)

    async def _handle_counted(self, stream: anyio.abc.SocketStream) -> None:
        try:
            await self._handle(stream)
        finally:
            self._open_connections -= 1

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
            orders = self._orders_of(stream)
            if orders is None:
                await self._answer(stream, Decision(False, f"llmmixer: refused: {NOT_A_GUARD}"))
                self._refusal(dataclasses.replace(request, kind="refused", rule=NOT_A_GUARD, env={}))
                return
            mode, program, rule = orders
            request = dataclasses.replace(request, program=program, rule=rule)
            if mode != "ask":
                await self._answer(stream, Decision(False, f"llmmixer: {program} refused by policy rule {rule}"))
                self._refusal(dataclasses.replace(request, kind="refused", env={}))
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

    def _orders_of(self, stream: anyio.abc.SocketStream) -> Orders | None:
        """The orders of the guard file the peer runs, or None (not a guard, or no way to tell)."""
        if self.identify is None:
            return None
        try:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            pid, _uid, _gid = struct.unpack("3i", raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                 struct.calcsize("3i")))
        except (OSError, anyio.TypedAttributeLookupError, struct.error):
            return None
        if pid <= 0 or _traced(pid):
            return None  # a traced guard could have its registers changed between the answer and its exec
        return self.identify(pid)

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
