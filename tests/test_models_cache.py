"""``models`` and ``-m`` without starting every adapter (issue 22): listings come from the manifests plus a cache
that every live listing refreshes; an unknown model is refused without asking any server, and a model whose
server has no key names the variable to set."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.model_cache import cache_path, cached_listings
from llmmixer.orchestrator.models import list_all_models, resolve_model_ids
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import AuthError, InvalidInputError

pytestmark = pytest.mark.anyio


def _config() -> Config:
    return Config(servers=default_servers(inprocess=True), settings=Settings())


def _started(runs: Runs) -> list[str]:
    return [status.name for status in runs.pool.statuses() if status.status != "idle"]


async def test_a_listing_is_cached_and_then_m_resolves_without_starting_a_server(emu: Any) -> None:
    async with Runs(_config(), open_store("memory")) as runs:
        with anyio.fail_after(60):
            await list_all_models(runs)
    assert cache_path().is_file()
    emu.reset()
    async with Runs(_config(), open_store("memory")) as runs:
        chosen = await resolve_model_ids(runs, ["claude-opus-4-6", "gpt-5"])
        assert chosen == [("claude", "claude-opus-4-6"), ("gpt", "gpt-5")]
        with pytest.raises(InvalidInputError, match="llama-9"):
            await resolve_model_ids(runs, ["llama-9"])
        assert _started(runs) == []
    assert emu.requests() == []  # no vendor was asked for its models
    listed = {listing["source"]: listing for listing in cached_listings(_config())}
    assert listed["claude"]["listed_at"] is not None
    assert any(m["id"] == "claude-sonnet-4-6" for m in listed["claude"]["models"])


async def test_before_any_listing_the_manifests_default_models_resolve_at_once(emu: Any) -> None:
    async with Runs(_config(), open_store("memory")) as runs:
        assert await resolve_model_ids(runs, ["claude"]) == [("claude", "claude-haiku-4-5")]
        assert await resolve_model_ids(runs, ["gemini-2.5-flash"]) == [("gemini", "gemini-2.5-flash")]
        assert _started(runs) == []
        # An id no manifest names: the never-listed servers are asked once, and remembered.
        with anyio.fail_after(60):
            assert await resolve_model_ids(runs, ["claude-opus-4-6"]) == [("claude", "claude-opus-4-6")]
    assert {listing["source"] for listing in cached_listings(_config()) if listing["listed_at"]} == {
        "claude", "gpt", "gemini"}


async def test_a_model_whose_server_has_no_key_names_the_variable(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    async with Runs(_config(), open_store("memory")) as runs:
        with pytest.raises(AuthError, match="OPENAI_API_KEY"):
            await resolve_model_ids(runs, ["gpt"])
        assert _started(runs) == []


async def test_a_server_pointed_elsewhere_does_not_reuse_another_endpoints_listing(
        emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Runs(_config(), open_store("memory")) as runs:
        with anyio.fail_after(60):
            await list_all_models(runs)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    listed = {listing["source"]: listing for listing in cached_listings(_config())}
    assert listed["gpt"]["listed_at"] is None and listed["claude"]["listed_at"] is not None
