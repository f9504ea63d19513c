"""The layout every tool reads the same way: one package root (``llmmixer/``) whose real folders are the installed
tree, so ``pip install -e .`` is a plain path entry, mypy and Pyright need no mapping, and a second clone's tests
import only that clone (``pythonpath = ["."]`` in ``[tool.pytest.ini_options]``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import llmmixer

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_is_in_the_package_and_its_data() -> None:
    assert (ROOT / "llmmixer" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert "py.typed" in data


def test_the_source_tree_is_the_imported_tree() -> None:
    assert Path(llmmixer.__file__).resolve().parent == ROOT / "llmmixer"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert config["setuptools"]["package-dir"] == {"": "."} and "mypy_path" not in config["mypy"]


def test_an_editable_install_is_a_plain_path_entry() -> None:
    site = [Path(p) for p in sys.path if p.endswith("site-packages")]
    entries = [pth for folder in site for pth in folder.glob("__editable__*llmmixer*.pth")]
    if not entries:
        pytest.skip("llmmixer is not installed in editable mode here")
    for pth in entries:
        lines = [line for line in pth.read_text().splitlines() if line.strip()]
        assert lines and not any(line.startswith("import") for line in lines), lines


def test_a_second_clone_imports_only_itself(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "llmmixer", clone / "llmmixer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", clone / "pyproject.toml")
    (clone / "tests").mkdir()
    (clone / "tests" / "test_where.py").write_text(
        "from pathlib import Path\n"
        "import llmmixer.orchestrator.modes, llmmixer.servers.core.events\n"
        "def test_where():\n"
        "    here = Path(__file__).resolve().parents[1]\n"
        "    for module in (llmmixer, llmmixer.orchestrator.modes, llmmixer.servers.core.events):\n"
        "        assert Path(module.__file__).resolve().is_relative_to(here), module.__file__\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=clone,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
