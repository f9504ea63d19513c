"""A real ``serve`` app (the run service over the three adapter servers on stdio, pointed at the emulators) for
the gateway tests, and the shell-tool conversation they script."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running

TOKEN = "gw-test-token-0123456789"
SHELL_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
TURNS = [{"say": "Let me look.", "tool": "shell", "args": {"command": "ls -la"}}, {"say": "All done."}]
VENDORS = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}


@dataclass
class Gateway:
    url: str
    runs: Runs


@contextlib.asynccontextmanager
async def gateway(aliases: dict[str, str] | None = None, **settings: Any) -> AsyncIterator[Gateway]:
    config = Config(servers=default_servers(inprocess=True), settings=Settings(aliases=aliases or {}, **settings))
    async with Runs(config, open_store("memory")) as runs:
        await runs.pool.check()  # every server up: a race's legs then all reach their vendor
        async with running(create_app(runs, runs.store, token=TOKEN)) as url:
            yield Gateway(url=url, runs=runs)
