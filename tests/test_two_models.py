"""issue 27, item 3: any two models of one vendor, in every mode, told apart by name, each sent its own model (checked
at the emulator); and best-of-N on one model (``--models claude,claude``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import server_env
from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.legs import name_legs, parse_leg
from llmmixer.orchestrator.modes import MODES
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import InvalidInputError
from llmmixer.servers.emulators.server import EmulatorServer

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")
PAIR = ["gpt:gpt-5", "gpt:gpt-5-mini"]


def test_leg_names() -> None:
    assert name_legs([("gpt", "gpt-5"), ("gpt", "gpt-5-mini")]) == PAIR
    assert name_legs([("claude", None), ("claude", None), ("gpt", None)]) == ["claude#1", "claude#2", "gpt"]
    assert name_legs([("gpt", "gpt-5"), ("gpt", "gpt-5")]) == ["gpt:gpt-5#1", "gpt:gpt-5#2"]
    assert parse_leg("gpt:gpt-5#2") == ("gpt", "gpt-5")
    assert parse_leg("gpt:llama3:8b") == ("gpt", "llama3:8b")
    assert parse_leg("claude#1") == ("claude", None)


def _undated(model: str) -> str:
    """``gpt-5-mini-2025-08-07`` (what a finished call reports) -> ``gpt-5-mini`` (what was asked for)."""
    return re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model)


def _models_sent(emu: EmulatorServer, vendor: str) -> list[str]:
    """The model of each generation request the vendor saw (not the model listings ``-m`` reads first)."""
    return sorted(str(record["body"]["model"]) for record in emu.requests(vendor) if record["method"] == "POST")


async def _ask(runs: Runs, **kwargs: Any) -> dict[str, Any]:
    run_id = await runs.start_ask("Name a colour.", **kwargs)
    assert await runs.wait(run_id, 120)
    return await runs.snapshot(run_id)


@pytest.mark.anyio
async def test_two_models_of_one_vendor_in_every_mode(emu: EmulatorServer) -> None:
    settings = Settings(hedge_delay_ms=1, hedge_budget=1.0)
    async with Runs(Config(servers=default_servers(inprocess=True), settings=settings), open_store("memory")) as runs:
        for mode in MODES:
            emu.reset()
            emu.set_behaviour("openai", ttft_ms=200, inter_token_ms=5, reply="Teal.")
            if mode == "fallback":  # the first leg fails, so the second runs too
                emu.queue("openai", {"error": {"status": 404, "type": "model_not_found"}})
            result = await _ask(runs, models=list(PAIR), mode=mode)
            proposers = {leg["source"]: leg for leg in result["legs"] if leg.get("role") in (None, "proposer")}
            assert set(proposers) == set(PAIR), (mode, result["legs"])
            for name, leg in proposers.items():
                assert leg["server"] == "gpt" and _undated(leg["model"]) == parse_leg(name)[1], (mode, leg)
            sent = _models_sent(emu, "openai")
            assert "gpt-5" in sent and "gpt-5-mini" in sent, (mode, sent)
            if mode in ("race", "first-token", "all"):
                assert result["winner"] in PAIR or mode == "all"


@pytest.mark.anyio
async def test_best_of_n_on_one_server(emu: EmulatorServer) -> None:
    emu.set_behaviour("anthropic", ttft_ms=0, reply="Blue.")
    async with Runs(Config(servers=default_servers(inprocess=True)), open_store("memory")) as runs:
        result = await _ask(runs, models="claude,claude", mode="all")
        with pytest.raises(InvalidInputError, match="SERVER:MODEL"):
            runs.resolve_models(["claude", "nope:x"])
    assert [leg["source"] for leg in result["legs"]] == ["claude#1", "claude#2"]
    assert all(leg["status"] == "done" and leg["text"] == "Blue." for leg in result["legs"])
    assert len(emu.requests("anthropic")) == 2


@pytest.mark.e2e
def test_dash_m_twice_on_one_vendor_from_the_cli(emu: EmulatorServer, tmp_path: Path) -> None:
    done = subprocess.run([LLMMIXER, "ask", "hi", "-m", "gpt-5", "-m", "gpt-5-mini", "--mode", "all", "--json",
                           "--store", "memory"], capture_output=True, text=True, env=server_env(emu), timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [leg["source"] for leg in result["legs"]] == PAIR
    assert [_undated(leg["model"]) for leg in result["legs"]] == ["gpt-5", "gpt-5-mini"]
    assert _models_sent(emu, "openai") == ["gpt-5", "gpt-5-mini"]
