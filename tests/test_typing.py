"""The typing seams CI relies on: ``py.typed`` ships, and the tree mypy checks (``.mypy/llmmixer``, see
``[tool.mypy]`` in pyproject.toml) is the installed layout: every file of ``llmmixer/`` plus ``servers/`` and
``orchestrator/`` under their installed names."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / ".mypy" / "llmmixer"


def test_py_typed_is_in_the_package_and_its_data() -> None:
    assert (ROOT / "llmmixer" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert "py.typed" in data


def test_the_mypy_tree_mirrors_the_installed_layout() -> None:
    linked = {path.name: path.resolve() for path in TREE.iterdir()}
    assert linked.pop("servers") == (ROOT / "servers").resolve()
    assert linked.pop("orchestrator") == (ROOT / "orchestrator").resolve()
    own = {path.name: path.resolve() for path in (ROOT / "llmmixer").iterdir() if path.name != "__pycache__"}
    assert linked == own, "link every file of llmmixer/ into .mypy/llmmixer/"


def test_mypy_checks_that_tree() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["mypy_path"] == ".mypy" and config["packages"] == ["llmmixer"]
