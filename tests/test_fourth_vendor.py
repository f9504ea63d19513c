"""A fourth vendor is a folder and one entry-point line (CONTRIBUTING.md), with nothing else changed: regression
test for issue 17.

The test writes a small distribution, ``llmmixer-acme``, to a temporary directory: a package (manifest, adapter,
``__main__``, and an emulator of its wire) and a ``.dist-info`` whose ``entry_points.txt`` holds the one line
registering it in the ``llmmixer.servers`` group. It is installed into the test venv as ``pip install -e`` would
(a ``.pth`` file naming the directory, removed afterwards), so the orchestrator's children find it too, and it is
found only through ``importlib.metadata`` entry points. Then the default ``llmmixer ask`` races it against the
three bundled vendors, on the emulators, and it wins.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import FAKE_KEYS, server_env

from llmmixer.servers.core.manifest import ENTRY_POINT_GROUP, load_manifests

PACKAGE = {
    "__init__.py": '"""Acme: a test-only fourth vendor."""\n',
    "manifest.py": """
        from llmmixer.servers.core.manifest import EmulatorInfo, ServerManifest

        MANIFEST = ServerManifest(
            name="acme", role="model", module="llmmixer_acme", title="Acme (test vendor)", vendor="acme",
            key_vars=("ACME_API_KEY",), base_url_var="ACME_BASE_URL", default_model="acme-1",
            emulator=EmulatorInfo(name="acme", module="llmmixer_acme.emulator", base_path="/acme"),
        )
    """,
    "adapter.py": """
        import json
        import os
        from typing import Any

        import httpx2

        from llmmixer.servers.core import BaseAdapter, Completion, ConnectionError_, TextDelta, Usage

        from .manifest import MANIFEST


        class AcmeAdapter(BaseAdapter):
            manifest = MANIFEST

            def transform_messages(self, request, model):
                return {"model": model, "turns": [m.model_dump() for m in request.conversation()]}

            async def call_model(self, payload, request, model):
                base = os.environ["ACME_BASE_URL"]
                headers = {"authorization": f"Bearer {self.api_key()}"}
                async with httpx2.AsyncClient(timeout=30) as http:
                    try:
                        async with http.stream("POST", f"{base}/v1/generate", json=payload, headers=headers) as reply:
                            async for line in reply.aiter_lines():
                                item = json.loads(line)
                                if "delta" in item:
                                    yield TextDelta(item["delta"])
                                else:
                                    yield Completion(model=model, stop_reason="end_turn",
                                                     usage=Usage(**item["usage"]))
                    except httpx2.TransportError as exc:
                        raise ConnectionError_(f"cannot reach Acme: {exc}", vendor=self.vendor) from exc

            async def list_models(self) -> list[dict[str, Any]]:
                return [{"id": "acme-1", "display_name": "Acme 1"}]
    """,
    "__main__.py": """
        from llmmixer.servers.core.mcp import adapter_main

        from .adapter import AcmeAdapter

        if __name__ == "__main__":
            adapter_main(AcmeAdapter)
    """,
    "emulator.py": """
        import json

        from starlette.routing import Route

        from llmmixer.servers.emulators.behaviour import split_tokens
        from llmmixer.servers.emulators.streaming import StreamingBody, pace


        def routes(ctx):
            async def generate(request):
                body = await request.json()
                behaviour = ctx.behaviour_for("acme")
                record = ctx.open_record("acme", request, body)
                tokens = split_tokens(behaviour.reply, behaviour.tokens)

                async def chunks():
                    async for token in pace(tokens, behaviour, ctx.rng, record):
                        yield (json.dumps({"delta": token}) + "\\n").encode()
                    usage = {"input_tokens": 3, "output_tokens": len(tokens)}
                    yield (json.dumps({"usage": usage}) + "\\n").encode()

                class Reply:
                    async def __call__(self, scope, receive, send):
                        await StreamingBody(chunks, record, headers={"content-type": "application/x-ndjson"})(
                            scope, receive, send)

                return Reply()

            return [Route("/v1/generate", generate, methods=["POST"])]
    """,
}
ENTRY_POINT_LINE = "acme = llmmixer_acme.manifest:MANIFEST"


@pytest.fixture
def acme(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The ``llmmixer-acme`` distribution, installed into this venv for the test's duration."""
    root = tmp_path_factory.mktemp("acme-dist")
    package = root / "llmmixer_acme"
    package.mkdir()
    for name, source in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    dist_info = root / "llmmixer_acme-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmmixer-acme\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{ENTRY_POINT_LINE}\n")
    pth = Path(site.getsitepackages()[0]) / f"llmmixer_test_acme_{os.getpid()}.pth"
    pth.write_text(f"{root}\n")
    monkeypatch.syspath_prepend(str(root))
    load_manifests.cache_clear()
    try:
        yield root
    finally:
        pth.unlink(missing_ok=True)
        load_manifests.cache_clear()


def test_the_plugin_is_found_through_entry_points_only(acme: Path) -> None:
    points = {p.name: p.value for p in entry_points(group=ENTRY_POINT_GROUP)}
    assert points["acme"] == "llmmixer_acme.manifest:MANIFEST"
    assert [m.name for m in load_manifests()] == ["claude", "gpt", "gemini", "pty", "acme"]

    from llmmixer.orchestrator.config import default_servers, model_sources
    from llmmixer.orchestrator.desktop_config import server_entries
    from llmmixer.orchestrator.web.meta import meta
    from llmmixer.servers.emulators.app import base_urls

    assert model_sources() == ["claude", "gpt", "gemini", "acme"]
    assert default_servers()["acme"].passthrough == ("ACME_API_KEY", "ACME_BASE_URL")
    assert base_urls("http://127.0.0.1:1")["ACME_BASE_URL"] == "http://127.0.0.1:1/acme"
    entries = server_entries(["acme", "orchestrator"])
    assert entries["llmmixer-acme"]["args"] == ["-m", "llmmixer_acme"]  # no console script: python -m
    assert entries["llmmixer-acme"]["env"] == {"ACME_API_KEY": "${ACME_API_KEY}"}
    assert "ACME_API_KEY" in entries["llmmixer"]["env"]
    assert {"name": "acme", "role": "model", "title": "Acme (test vendor)", "vendor": "acme", "key_var": "ACME_API_KEY",
            "default_model": "acme-1", "script": None} in meta()["servers"]


@pytest.mark.e2e
def test_the_default_race_includes_the_fourth_vendor_and_it_wins(acme: Path) -> None:
    from llmmixer.orchestrator.desktop_config import script_path
    from llmmixer.servers.emulators.server import EmulatorServer

    with EmulatorServer(seed=3) as emu:  # mounts every registered emulator: acme's too
        for vendor in ("anthropic", "openai", "gemini"):
            emu.set_behaviour(vendor, ttft_ms=20_000)
        emu.set_behaviour("acme", reply="Acme wins the race.", tokens=4, ttft_ms=50)
        env = server_env(emu, ACME_API_KEY="acme-test-key")
        done = subprocess.run([script_path("llmmixer"), "ask", "Who is fastest?", "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        records = [r for r in emu.requests() if r["method"] == "POST"]  # generation calls, not connection warm-ups
    assert result["winner"] == "acme" and result["mode"] == "race"
    legs = {leg["source"]: leg for leg in result["legs"]}
    assert set(legs) == {"claude", "gpt", "gemini", "acme"}
    assert legs["acme"]["text"] == "Acme wins the race." and legs["acme"]["model"] == "acme-1"
    assert all(legs[s]["status"] == "cancelled" for s in ("claude", "gpt", "gemini"))
    acme_calls = [r for r in records if r["vendor"] == "acme"]
    assert acme_calls and acme_calls[0]["body"]["turns"] == [{"role": "user", "content": "Who is fastest?"}]
    # the losers' upstream requests were closed by the cancellation, not left running
    assert all(r["outcome"] == "client_closed" for r in records if r["vendor"] != "acme")
    assert FAKE_KEYS["ANTHROPIC_API_KEY"] not in done.stdout
    assert sys.executable  # the children ran on this interpreter, through the .pth the fixture wrote
