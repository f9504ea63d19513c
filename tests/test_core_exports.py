"""``llmmixer.servers.core`` is the adapter SDK: its ``__all__`` is complete and every name resolves
(in the style of httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llmmixer.servers.core as core
from llmmixer.servers.core import adapter, errors, events, manifest, mcp, messages


def test_all_names_resolve_to_the_objects_of_their_modules() -> None:
    for name in core.__all__:
        value = getattr(core, name)
        home = next(m for m in (messages, adapter, errors, events, manifest, mcp) if name in vars(m))
        assert value is getattr(home, name), name


def test_all_holds_the_sdk_and_every_error() -> None:
    sdk = {"BaseAdapter", "GenerateRequest", "TextDelta", "Completion", "Usage", "AdapterSettings",
           "ServerManifest", "EmulatorInfo", "LLMMixerError", "RetryableError", "ErrorKind"}
    assert sdk <= set(core.__all__)
    assert set(errors.__all__) <= set(core.__all__)
    assert len(core.__all__) == len(set(core.__all__))


def test_every_public_error_class_is_exported() -> None:
    public = {name for name, value in vars(errors).items()
              if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
              and value.__module__ == errors.__name__}
    assert public <= set(core.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        core.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


@pytest.mark.e2e
def test_importing_an_error_does_not_load_the_adapter_machinery() -> None:
    code = ("import sys; from llmmixer.servers.core import AuthError; "
            "print('llmmixer.servers.core.adapter' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
