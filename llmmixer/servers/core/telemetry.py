"""OpenTelemetry for every LLMMixer process: off by default, on with the standard ``OTEL_*`` variables.

When on, :func:`setup` installs the OpenTelemetry SDK's tracer and meter providers as the global ones, so the MCP
SDK's own spans join them: its client span ``tools/call generate`` carries the trace context in ``params._meta``,
and the server span on the other side continues it. An adapter adds a GenAI ``chat {model}`` span around the vendor
call (:func:`chat_span`), so one trace holds the run, its legs and every vendor call across the process boundary.

Nothing here imports the SDK until telemetry is asked for: with it off, start-up is untouched. The SDK is the
optional ``otel`` extra (``pip install 'llmmixer[otel]'``); asked for without it, a warning says so and the process
runs without telemetry. Only OTLP over HTTP (protobuf) is exported.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OTEL_VARS", "Telemetry", "requested", "setup", "setup_from_environ", "active", "shutdown",
           "chat_span", "ChatSpan"]

log = logging.getLogger("llmmixer.telemetry")

# The standard variables a launched server receives when set, so its spans reach the same collector.
OTEL_VARS = ("OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT",
             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
             "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL",
             "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_TRACES_SAMPLER",
             "OTEL_TRACES_SAMPLER_ARG", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_METRIC_EXPORT_INTERVAL")
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when the environment asks for telemetry: an OTLP endpoint, or an exporter other than ``none``."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if any(environ.get(name) for name in _ENDPOINT_VARS):
        return True
    return any(environ.get(name, "none").strip().lower() not in ("", "none")
               for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"))


@dataclass
class Telemetry:
    """The installed providers. ``prometheus``: a reader serves the metrics as Prometheus text (``/metrics``)."""

    tracer_provider: Any
    meter_provider: Any
    prometheus: bool
    exporting: bool  # OTLP exporters are attached

    def tracer(self, name: str = "llmmixer") -> Any:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str = "llmmixer") -> Any:
        return self.meter_provider.get_meter(name)

    def flush(self, timeout_ms: int = 5_000) -> None:
        self.tracer_provider.force_flush(timeout_ms)
        self.meter_provider.force_flush(timeout_ms)


_ACTIVE: Telemetry | None = None


def active() -> Telemetry | None:
    return _ACTIVE


def setup(service_name: str, *, endpoint: str | None = None, export: bool = True, prometheus: bool = False,
          environ: Mapping[str, str] | None = None) -> Telemetry | None:
    """Install the SDK's providers as this process's global ones (once); None when the SDK is not installed.

    ``endpoint`` (an OTLP/HTTP base URL such as ``http://127.0.0.1:4318``) overrides ``OTEL_EXPORTER_OTLP_ENDPOINT``;
    with ``export`` false nothing is sent anywhere (``prometheus`` alone: metrics for ``/metrics`` only).
    """
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    environ = os.environ if environ is None else environ
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("telemetry was asked for, but the OpenTelemetry SDK is not installed: "
                    "pip install 'llmmixer[otel]'")
        return None
    protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if export and protocol != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; exporting OTLP over http/protobuf", protocol)
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    resource = Resource.create(attributes)
    tracer_provider = TracerProvider(resource=resource)
    readers: list[Any] = []
    if export:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        base = endpoint.rstrip("/") if endpoint else None
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None)))
        readers.append(PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None)))
    if prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _ACTIVE = Telemetry(tracer_provider, meter_provider, prometheus=prometheus, exporting=export)
    return _ACTIVE


def setup_from_environ(service_name: str) -> Telemetry | None:
    """What a server does at start: telemetry when the standard variables ask for it, else nothing at all."""
    return setup(service_name) if requested() else None


def shutdown(timeout_ms: int = 5_000) -> None:
    """Flush what is pending and stop the exporters (before the process exits)."""
    global _ACTIVE
    if _ACTIVE is None:
        return
    telemetry, _ACTIVE = _ACTIVE, None
    try:
        telemetry.flush(timeout_ms)
        telemetry.tracer_provider.shutdown()
        telemetry.meter_provider.shutdown(timeout_millis=timeout_ms)
    except Exception:  # noqa: BLE001 - a collector that is gone must not stop the process from exiting
        log.warning("telemetry did not flush cleanly", exc_info=True)


class ChatSpan:
    """A GenAI ``chat {model}`` client span around one vendor call (semantic conventions for GenAI inference)."""

    def __init__(self, span: Any) -> None:
        self.span = span

    def finished(self, model: str | None, stop_reason: str | None, usage: Mapping[str, Any] | None,
                 cost_usd: float | None, ttft_ms: float | None) -> None:
        attributes: dict[str, Any] = {}
        if model:
            attributes["gen_ai.response.model"] = model
        if stop_reason:
            attributes["gen_ai.response.finish_reasons"] = [stop_reason]
        for key in ("input_tokens", "output_tokens"):
            if usage and isinstance(usage.get(key), int):
                attributes[f"gen_ai.usage.{key}"] = usage[key]
        if cost_usd is not None:
            attributes["llmmixer.cost_usd"] = cost_usd
        if ttft_ms is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = ttft_ms / 1000
        self.span.set_attributes(attributes)

    def failed(self, kind: str, message: str) -> None:
        from opentelemetry.trace import StatusCode

        self.span.set_attribute("error.type", kind)
        self.span.set_status(StatusCode.ERROR, message[:200])


@contextlib.contextmanager
def chat_span(provider: str | None, model: str | None) -> Iterator[ChatSpan | None]:
    """A ``chat {model}`` span, the child of the current one (the MCP server span); None when telemetry is off."""
    if _ACTIVE is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider or "unknown"}
    if model:
        attributes["gen_ai.request.model"] = model
    name = f"chat {model}" if model else "chat"
    with _ACTIVE.tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes,
                                                record_exception=False) as span:
        yield ChatSpan(span)
