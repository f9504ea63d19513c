"""An adapter whose class, and so its vendor SDK, is imported after the server has started answering.

A vendor SDK is most of an adapter server's start-up (the ``anthropic`` package alone imports about 3,000
modules), and an MCP host waits for ``initialize`` and ``tools/list`` before it offers the server's tools to its
model. Neither needs the SDK: the tool schemas are vendor-free, and the facts the server states before the first
call (its name, vendor, default model) are its manifest's. So a server built on a :class:`LazyAdapter` answers
both at once, and imports the adapter class in a worker thread:

- when ``tools/list`` has been answered (:meth:`LazyAdapter.want`): a host that lists the tools is about to use them;
- or at the first call, which then waits for the import (and for the adapter's own warm-up), never races it.

Once loaded, the adapter serves for the rest of the server's life exactly as an eagerly built one does
(:meth:`BaseAdapter.serving`: warm-up, replacement connections after cancelled streams). An import that fails is
reported to every call as a ``server`` error naming the module, and the server keeps answering.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .errors import LLMMixerError, UnexpectedError
from .manifest import ServerManifest

if TYPE_CHECKING:
    from .adapter import AdapterSettings, BaseAdapter

__all__ = ["LazyAdapter", "load_target"]

#: Pause between the answer to ``tools/list`` and the start of the import, so the answer is written first.
WANT_DELAY_S = 0.005
#: How long the adapter's SDK client may take to close when the server stops.
CLOSE_TIMEOUT_S = 2.0


def load_target(target: str) -> type[BaseAdapter]:
    """``"package.module:ClassName"`` -> the class (imports the module)."""
    module, _, name = target.partition(":")
    cls: type[BaseAdapter] = getattr(importlib.import_module(module), name)
    return cls


class LazyAdapter:
    """Stands in for a :class:`BaseAdapter` until :meth:`loaded` has imported and built it (see the module doc).

    ``source``, ``vendor``, ``default_model`` and ``settings`` are known before the import, from the manifest and
    the command line; ``configure`` receives the parsed flags once the class exists.
    """

    def __init__(self, manifest: ServerManifest, target: str, settings: AdapterSettings,
                 configure: argparse.Namespace | None = None,
                 factory: Callable[[type[BaseAdapter], AdapterSettings], BaseAdapter] | None = None) -> None:
        self.manifest = manifest
        self.target = target
        self.source = manifest.name
        self.vendor = manifest.vendor or manifest.name
        self.default_model = manifest.default_model or ""
        self.settings = settings
        self._args = configure
        self._factory = factory
        self._wanted = anyio.Event()
        self._ready = anyio.Event()
        self._adapter: BaseAdapter | None = None
        self._error: LLMMixerError | None = None
        self._serving = False
        self._started = False

    def want(self) -> None:
        """Start the import now (in the background) rather than at the first call."""
        self._wanted.set()

    async def loaded(self) -> BaseAdapter:
        """The adapter, imported, built and serving; waits for the import when it is still under way.

        Raises:
            UnexpectedError: the adapter's module could not be imported or the adapter not built.
        """
        if self._adapter is not None:
            return self._adapter
        self.want()
        if not self._serving:  # no lifespan (a one-off script): load in this task
            await self._load()
        await self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._adapter is not None
        return self._adapter

    def serving(self) -> contextlib.AbstractAsyncContextManager[LazyAdapter]:
        """The server's lifespan: loads in the background once wanted, then serves the adapter until it ends."""
        return self._serve()

    @contextlib.asynccontextmanager
    async def _serve(self) -> AsyncIterator[LazyAdapter]:
        async with anyio.create_task_group() as tg:
            self._serving = True
            tg.start_soon(self._load_and_serve)
            try:
                yield self
            finally:
                self._serving = False
                tg.cancel_scope.cancel()

    async def _load_and_serve(self) -> None:
        await self._wanted.wait()
        await anyio.sleep(WANT_DELAY_S)
        await self._load()
        if self._adapter is None:
            return
        try:
            async with self._adapter.serving():  # entered and left in this one task, as a task group must be
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT_S):
                await self._adapter.aclose()

    async def _load(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._adapter = await anyio.to_thread.run_sync(self._build)
        except LLMMixerError as error:
            self._error = error
        except Exception as exc:  # noqa: BLE001 - a broken install must answer every call, not kill the server
            self._error = UnexpectedError(f"cannot load the {self.source} adapter ({self.target}): "
                                          f"{type(exc).__name__}: {exc}", vendor=self.vendor)
        finally:
            self._ready.set()

    def _build(self) -> BaseAdapter:
        cls = load_target(self.target)
        adapter = self._factory(cls, self.settings) if self._factory is not None else cls(self.settings)
        if self._args is not None:
            adapter.configure(self._args)
        return adapter
