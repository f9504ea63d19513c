"""Issue 25, item 7: the Claude Desktop bundle (``packaging/mcpb``, server type ``uv``) validates and packs with the
official ``@anthropic-ai/mcpb`` CLI (pinned in ``.ci/run``), names each key as a sensitive ``user_config`` passed
to the server's ``env``, and lists exactly the tools ``llmmixer mcp`` serves, at the package's version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import anyio
import pytest

from llmmixer.servers.core.manifest import model_manifests
from llmmixer.servers.core.mcp import package_version

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "packaging" / "mcpb"
MCPB = Path(os.environ.get("LLMMIXER_MCPB_CLI") or ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcpb")
sys.path.insert(0, str(ROOT / "tools"))
from tool_table import _tools  # noqa: E402


def manifest() -> dict:
    return json.loads((BUNDLE / "manifest.json").read_text())


def test_the_bundle_describes_the_server_it_runs() -> None:
    data = manifest()
    assert data["version"] == package_version()
    assert tomllib.loads((BUNDLE / "pyproject.toml").read_text())["project"]["dependencies"] == [
        f"llmmixer=={package_version()}"]
    served = anyio.run(_tools, "llmmixer", ["mcp"])
    listed = [(t["name"], t["description"]) for t in data["tools"]]
    assert listed == [(t.name, t.description) for t in served], "stale: run python tools/tool_table.py"
    server = data["server"]
    assert server["type"] == "uv" and (BUNDLE / server["entry_point"]).is_file()
    # Every adapter's key is a sensitive user_config value, handed to the server's env and nowhere else.
    env = server["mcp_config"]["env"]
    for var in (m.key_vars[0] for m in model_manifests() if m.key_vars):
        key = env[var].removeprefix("${user_config.").removesuffix("}")
        assert data["user_config"][key]["sensitive"] is True and data["user_config"][key]["type"] == "string"


@pytest.mark.skipif(not MCPB.exists(), reason="needs @anthropic-ai/mcpb under .ci/node (see .ci/run)")
@pytest.mark.e2e
def test_the_official_cli_validates_and_packs_the_bundle(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([str(MCPB), "validate", str(BUNDLE / "manifest.json")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0 and "passes" in done.stdout, done.stdout + done.stderr
    out = tmp_path / "llmmixer.mcpb"
    packed = subprocess.run([str(MCPB), "pack", str(BUNDLE), str(out)], capture_output=True, text=True, timeout=120,
                            env=env)
    assert packed.returncode == 0 and out.stat().st_size > 0, packed.stdout + packed.stderr
    info = subprocess.run([str(MCPB), "unpack", str(out), str(tmp_path / "unpacked")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert info.returncode == 0, info.stderr
    assert json.loads((tmp_path / "unpacked" / "manifest.json").read_text()) == manifest()
