"""The autouse fixture in conftest.py keeps a developer's shell out of every test (regression: issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ISOLATED_PREFIXES


def test_no_project_or_vendor_variable_and_a_fresh_home_and_cwd() -> None:
    # Only what the fixture itself sets: the CLI runs in-process unless a test asks for the resident service.
    leaked = [name for name in os.environ if name.startswith(ISOLATED_PREFIXES)]
    assert leaked == ["LLMMIXER_RESIDENT"] and os.environ["LLMMIXER_RESIDENT"] == "0"
    assert Path.cwd().parent == Path(os.environ["HOME"]) and not any(Path.cwd().iterdir())


def test_a_config_named_in_the_shell_does_not_reach_load_config(tmp_path: Path) -> None:
    """Run one config test in a child pytest whose shell names a config file that does not exist."""
    env = {**os.environ, "LLMMIXER_CONFIG": str(tmp_path / "missing.json"), "LLMMIXER_STORE": "nope://"}
    probe = tmp_path / "test_probe.py"
    probe.write_text("from llmmixer.orchestrator.config import load_config\n\n"
                     "def test_defaults():\n    assert load_config().path is None\n")
    conftest = Path(__file__).with_name("conftest.py")
    (tmp_path / "conftest.py").write_text(conftest.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
