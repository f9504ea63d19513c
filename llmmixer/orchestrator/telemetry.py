"""One OpenTelemetry trace per run, and the GenAI, MCP and mixer metrics, read off the run's own events.

:class:`RunTelemetry` watches the events :class:`~.runs.Runs` emits (the same ones the store, SSE and the dashboard
see), so no strategy knows about telemetry:

- ``run.started`` opens the run span (``run {mode}``, or ``command`` / ``agent``); it becomes the current span of the
  run's task, so a command's MCP client span nests under it.
- ``leg.started`` opens a leg span under it and makes it current in the leg's task: the MCP SDK's client span
  ``tools/call generate`` is its child and carries the trace context to the adapter in ``params._meta``, where the
  SDK's server span and the adapter's ``chat {model}`` span continue the same trace.
- the leg's end event records its metrics; ``race.won`` and ``run.done`` settle each leg's outcome (``won``,
  ``done``, ``cancelled``, ``error``, ``skipped: <reason>``, ``recovered``), cost and TTFT as attributes, and end the
  spans at the times the events carry.

Metrics (names and attributes from the GenAI and MCP semantic conventions, plus ``llmmixer.*``):
``gen_ai.client.operation.duration``, ``gen_ai.client.operation.time_to_first_chunk``, ``gen_ai.client.token.usage``,
``mcp.client.operation.duration``, ``llmmixer.runs``, ``llmmixer.legs.cancelled``, ``llmmixer.spend``, and the
gauges ``llmmixer.cooldowns`` and ``llmmixer.store.spool``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..servers.core import telemetry as otel
from ..servers.core.events import LEG_ENDS, Event
from ..servers.core.manifest import manifest_for
from .config import Config

__all__ = ["RunTelemetry", "open_telemetry", "metrics_text"]

log = logging.getLogger("llmmixer.telemetry")

# Bucket boundaries the GenAI conventions recommend.
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


@dataclass
class _Leg:
    span: Any
    source: str
    started: float
    model: str | None = None
    ended: float | None = None
    outcome: str | None = None
    recovered: bool = False


@dataclass
class _Run:
    span: Any
    kind: str
    mode: str | None
    legs: dict[str, _Leg] = field(default_factory=dict)
    winner: str | None = None
    recovered_to: set[str] = field(default_factory=set)


class RunTelemetry:
    """Turns the events of runs into spans and metrics; :meth:`observe` is called for every event, in order."""

    def __init__(self, providers: otel.Telemetry, *, cooldowns: Callable[[], int] | None = None,
                 spool: Callable[[], int] | None = None) -> None:
        from opentelemetry import context, trace
        from opentelemetry.metrics import CallbackOptions, Observation

        self._context, self._trace = context, trace
        self.tracer = providers.tracer("llmmixer.orchestrator")
        meter = providers.meter("llmmixer.orchestrator")
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to receive the first chunk of a streamed reply",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS)
        self.mcp_duration = meter.create_histogram(
            "mcp.client.operation.duration", unit="s", description="MCP request duration as seen by the client",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.runs = meter.create_counter("llmmixer.runs", unit="{run}", description="Runs by kind, mode and outcome")
        self.cancelled = meter.create_counter("llmmixer.legs.cancelled", unit="{leg}",
                                              description="Legs cancelled (a race lost, a cost cap, a caller)")
        self.spend = meter.create_counter("llmmixer.spend", unit="usd",
                                          description="Spend in USD by model, mode and leg outcome")

        def gauge(read: Callable[[], int] | None) -> Callable[[CallbackOptions], list[Observation]]:
            return lambda _options: [Observation(read())] if read is not None else []

        meter.create_observable_gauge("llmmixer.cooldowns", [gauge(cooldowns)], unit="{server}",
                                      description="Servers cooling down (skipped while another leg exists)")
        meter.create_observable_gauge("llmmixer.store.spool", [gauge(spool)], unit="{event}",
                                      description="Events waiting in the store writer's spool")
        self._runs: dict[str, _Run] = {}

    # -- the events ---------------------------------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        try:
            self._observe(event)
        except Exception:  # noqa: BLE001 - telemetry never breaks a run
            log.warning("telemetry could not record %s", event.type, exc_info=True)

    def _observe(self, event: Event) -> None:
        if event.type == "run.started":
            self._run_started(event)
            return
        run = self._runs.get(event.run)
        if run is None:
            return
        data = event.data
        if event.type == "leg.started":
            self._leg_started(run, event)
        elif event.type == "leg.first_token" and (leg := run.legs.get(event.source)) is not None:
            ttft = data.get("ttft_ms")
            if isinstance(ttft, (int, float)):
                leg.span.set_attribute("gen_ai.response.time_to_first_chunk", ttft / 1000)
                self.ttfc.record(ttft / 1000, self._gen_ai(event.source, leg.model))
        elif event.type in LEG_ENDS and (leg := run.legs.get(event.source)) is not None:
            self._leg_ended(run, leg, event)
        elif event.type == "leg.skipped":
            span = self.tracer.start_span(f"leg {event.source}", context=self._in(run), start_time=_ns(event.ts))
            run.legs[event.source] = _Leg(span, event.source, event.ts, ended=event.ts,
                                          outcome=f"skipped: {data.get('reason') or 'cooldown'}")
        elif event.type == "leg.recovery":
            run.recovered_to.update(str(s) for s in data.get("to") or ())
        elif event.type == "race.won":
            run.winner = data.get("winner") or event.source
        elif event.type == "run.done":
            self._run_done(event.run, run, event)

    def _in(self, run: _Run) -> Any:
        return self._trace.set_span_in_context(run.span)

    def _run_started(self, event: Event) -> None:
        kind = str(event.data.get("kind") or "ask")
        mode = event.data.get("mode")
        name = f"run {mode}" if kind == "ask" and mode else kind
        attributes = {"llmmixer.run.id": event.run, "llmmixer.run.kind": kind}
        if mode:
            attributes["llmmixer.mode"] = str(mode)
        span = self.tracer.start_span(name, start_time=_ns(event.ts), attributes=attributes)
        self._runs[event.run] = _Run(span, kind, str(mode) if mode else None)
        # The run's own task: what it calls next (a command's tools/call) nests under the run span.
        self._context.attach(self._trace.set_span_in_context(span))

    def _leg_started(self, run: _Run, event: Event) -> None:
        previous = run.legs.get(event.source)
        if previous is not None and previous.ended is None:
            previous.ended = event.ts
        model = event.data.get("model")
        attributes = {"llmmixer.leg.source": event.source, "gen_ai.operation.name": "chat"}
        if model:
            attributes["gen_ai.request.model"] = str(model)
        if event.data.get("role"):
            attributes["llmmixer.leg.role"] = str(event.data["role"])
        span = self.tracer.start_span(f"leg {event.source}", context=self._in(run), start_time=_ns(event.ts),
                                      attributes=attributes)
        run.legs[event.source] = _Leg(span, event.source, event.ts, model=str(model) if model else None)
        # The leg's own task: the MCP SDK's client span for this call becomes the leg span's child.
        self._context.attach(self._trace.set_span_in_context(span))

    def _leg_ended(self, run: _Run, leg: _Leg, event: Event) -> None:
        leg.ended, leg.outcome = event.ts, LEG_ENDS[event.type]
        data = event.data
        leg.model = data.get("model") or leg.model
        attributes = self._gen_ai(leg.source, leg.model)
        seconds = max(0.0, event.ts - leg.started)
        error = data.get("error") if isinstance(data.get("error"), dict) else None
        if error is not None:
            attributes["error.type"] = str(error.get("kind") or "error")
        elif leg.outcome == "cancelled":
            attributes["error.type"] = "cancelled"
        self.duration.record(seconds, attributes)
        self.mcp_duration.record(seconds, {"mcp.method.name": "tools/call", "gen_ai.tool.name": "generate",
                                           **({"error.type": attributes["error.type"]}
                                              if "error.type" in attributes else {})})
        usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
        for kind in ("input", "output"):
            count = usage.get(f"{kind}_tokens")
            if isinstance(count, int) and not usage.get("estimated"):
                self.tokens.record(count, {**self._gen_ai(leg.source, leg.model), "gen_ai.token.type": kind})
        if leg.outcome == "cancelled":
            self.cancelled.add(1, {"llmmixer.mode": run.mode or run.kind})
        cost = data.get("cost_usd")
        if isinstance(cost, (int, float)) and cost > 0:
            self.spend.add(cost, {"gen_ai.request.model": leg.model or "unknown", "llmmixer.mode": run.mode or run.kind,
                                  "llmmixer.leg.outcome": leg.outcome})

    def _run_done(self, run_id: str, run: _Run, event: Event) -> None:
        self._runs.pop(run_id, None)
        data = event.data
        status = str(data.get("status") or "done")
        by_source = {str(leg.get("source")): leg for leg in data.get("legs") or () if isinstance(leg, dict)}
        for source, leg in run.legs.items():
            facts = by_source.get(source, {})
            outcome = leg.outcome or str(facts.get("status") or "cancelled")
            if source == run.winner or facts.get("status") == "won":
                outcome = "won"
            if source in run.recovered_to and outcome in ("won", "done"):
                outcome = "recovered"
            attributes: dict[str, Any] = {"llmmixer.leg.outcome": outcome}
            if isinstance(facts.get("cost_usd"), (int, float)):
                attributes["llmmixer.leg.cost_usd"] = facts["cost_usd"]
            if isinstance(facts.get("ttft_ms"), (int, float)):
                attributes["llmmixer.leg.ttft_ms"] = facts["ttft_ms"]
            usage: dict[str, Any] = facts["usage"] if isinstance(facts.get("usage"), dict) else {}
            for key in ("input_tokens", "output_tokens"):
                if isinstance(usage.get(key), int):
                    attributes[f"gen_ai.usage.{key}"] = usage[key]
            if facts.get("model"):
                attributes["gen_ai.response.model"] = str(facts["model"])
            leg.span.set_attributes(attributes)
            leg.span.end(end_time=_ns(leg.ended if leg.ended is not None else event.ts))
        attributes = {"llmmixer.run.status": status}
        if run.winner:
            attributes["llmmixer.winner"] = run.winner
        total = data.get("total_cost_usd")
        if isinstance(total, (int, float)):
            attributes["llmmixer.cost_usd"] = total
        if isinstance(data.get("cost_cap"), dict):
            attributes["llmmixer.cost_cap.stopped"] = bool(data["cost_cap"].get("stopped"))
        run.span.set_attributes(attributes)
        if status not in ("done",):
            from opentelemetry.trace import StatusCode

            run.span.set_status(StatusCode.ERROR if status == "error" else StatusCode.UNSET)
        run.span.end(end_time=_ns(event.ts))
        self.runs.add(1, {"llmmixer.run.kind": run.kind, "llmmixer.mode": run.mode or run.kind,
                          "llmmixer.run.status": status})

    @staticmethod
    def _gen_ai(source: str, model: str | None) -> dict[str, Any]:
        manifest = manifest_for(source.split(":", 1)[0])
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat",
                                      "gen_ai.provider.name": (manifest.provider_name if manifest else None) or source}
        if model:
            attributes["gen_ai.request.model"] = model
        return attributes


def open_telemetry(config: Config, *, prometheus: bool = False, cooldowns: Callable[[], int] | None = None,
                   spool: Callable[[], int] | None = None) -> RunTelemetry | None:
    """The run telemetry this process was configured for (``settings.telemetry`` or ``OTEL_*``), else None.

    ``prometheus``: this process serves ``/metrics`` (``llmmixer serve`` with ``settings.telemetry.prometheus``).
    """
    import os

    settings = config.settings.telemetry
    export = settings.enabled or otel.requested()
    if not (export or prometheus):
        return None
    if settings.endpoint:
        # The launched servers read the standard variable (config.SHARED_SETTINGS passes it on).
        os.environ.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", settings.endpoint)
    providers = otel.setup("llmmixer", endpoint=settings.endpoint, export=export, prometheus=prometheus)
    if providers is None:
        return None
    return RunTelemetry(providers, cooldowns=cooldowns, spool=spool)


def metrics_text() -> tuple[bytes, str] | None:
    """The Prometheus exposition of this process's metrics, with its content type; None when not collected."""
    providers = otel.active()
    if providers is None or not providers.prometheus:
        return None
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
