"""One OpenTelemetry trace per run across the MCP boundary, exported over OTLP/HTTP by the real SDK to a receiver
that decodes the protobuf wire (tests/otlp_support.py); and ``/metrics`` parsed by prometheus_client's parser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import server_env
from otlp_support import Receiver

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")
SERVER, CLIENT = 2, 3  # the proto's SpanKind values


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Spans named ``name`` (the MCP SDK prefixes its client spans: ``MCP send tools/call generate``)."""
    return [span for span in spans if span["name"] == name or span["name"].endswith(f" {name}")]


def complete(receiver: Receiver) -> bool:
    names = [span["name"] for span in receiver.spans]
    return ("run race" in names and sum(name.endswith("tools/call generate") for name in names) >= 4
            and any(name.startswith("chat ") for name in names))


def test_one_trace_holds_the_run_its_legs_and_every_adapter_span(emu, tmp_path: Path) -> None:
    emu.set_behaviour("anthropic", ttft_ms=20, reply="claude first")
    emu.set_behaviour("openai", hang=True)  # never answers: claude wins however slowly its server starts
    with Receiver() as receiver:
        env = server_env(emu, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="100",
                         OTEL_METRIC_EXPORT_INTERVAL="200", LLMMIXER_STORE=f"sqlite:///{tmp_path / 'runs.db'}")
        done = subprocess.run([LLMMIXER, "ask", "hello", "--models", "claude,gpt", "--mode", "race", "--json"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["winner"] == "claude"
        assert receiver.wait_for(complete), [s["name"] for s in receiver.spans]
        spans = list(receiver.spans)

    (run,) = by_name(spans, "run race")
    trace = run["trace"]
    assert run["parent"] is None and run["service"] == "llmmixer"
    assert run["attributes"]["llmmixer.mode"] == "race" and run["attributes"]["llmmixer.winner"] == "claude"
    assert run["attributes"]["llmmixer.run.id"] == result["run_id"]
    legs = {span["attributes"]["llmmixer.leg.source"]: span for span in spans if span["name"].startswith("leg ")}
    assert set(legs) == {"claude", "gpt"}
    assert all(leg["trace"] == trace and leg["parent"] == run["id"] for leg in legs.values())
    assert legs["claude"]["attributes"]["llmmixer.leg.outcome"] == "won"
    assert legs["gpt"]["attributes"]["llmmixer.leg.outcome"] == "cancelled"
    assert legs["claude"]["attributes"]["llmmixer.leg.cost_usd"] > 0
    assert "llmmixer.leg.ttft_ms" in legs["claude"]["attributes"]

    calls = [span for span in by_name(spans, "tools/call generate") if span["kind"] == CLIENT]
    assert {call["parent"] for call in calls} == {legs["claude"]["id"], legs["gpt"]["id"]}
    assert all(call["trace"] == trace and call["attributes"]["mcp.method.name"] == "tools/call" for call in calls)
    # Across the process boundary: each adapter continues the trace from params._meta.
    handled = [span for span in by_name(spans, "tools/call generate") if span["kind"] == SERVER]
    assert {span["service"] for span in handled} >= {"llmmixer-claude"}
    assert all(span["trace"] == trace and span["parent"] in {c["id"] for c in calls} for span in handled)
    (chat,) = [span for span in spans if span["name"].startswith("chat ") and span["service"] == "llmmixer-claude"]
    assert chat["trace"] == trace and chat["kind"] == CLIENT
    assert chat["parent"] in {span["id"] for span in handled if span["service"] == "llmmixer-claude"}
    attributes = chat["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == chat["name"].removeprefix("chat ")
    assert attributes["gen_ai.usage.output_tokens"] > 0 and attributes["gen_ai.response.finish_reasons"]


def test_metrics_are_served_as_prometheus_text_behind_the_token(emu, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from llmmixer.servers.emulators.server import free_port

    config = tmp_path / "llmmixer.json"
    config.write_text(json.dumps({"settings": {"telemetry": {"prometheus": True}, "models": ["claude"]}}))
    port = free_port()
    env = server_env(emu, LLMMIXER_TOKEN="t0ken-for-metrics")
    serve = subprocess.Popen([LLMMIXER, "serve", "--config", str(config), "--port", str(port), "--store", "memory"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        import httpx2

        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer t0ken-for-metrics"}
        for line in serve.stdout or ():  # serve says where it listens once it is ready
            if str(port) in line:
                break
        with httpx2.Client(base_url=base, timeout=60) as http:
            assert http.get("/metrics").status_code == 401
            run = http.post("/api/runs", json={"prompt": "hello", "models": "claude"}, headers=headers)
            assert run.status_code in (200, 201, 202), run.text
            run_id = run.json()["run_id"]
            finished = http.get(f"/api/runs/{run_id}", params={"wait": 30}, headers=headers).json()
            assert finished["status"] == "done", finished
            exposition = http.get("/metrics", headers=headers)
        assert exposition.status_code == 200
        families = {family.name: family for family in text_string_to_metric_families(exposition.text)}
        assert "gen_ai_client_operation_duration_seconds" in families
        assert "gen_ai_client_token_usage" in families or "gen_ai_client_token_usage_tokens" in families
        runs = families["llmmixer_runs"]
        (sample,) = [s for s in runs.samples if s.name.endswith("_total")]
        assert sample.value == 1 and sample.labels["llmmixer_run_status"] == "done"
        assert "llmmixer_spend_usd" in families
    finally:
        serve.terminate()
        serve.wait(30)
