"""What the service spent and measured: ``GET /metrics`` (Prometheus text) and ``GET /api/stats`` (what racing
bought, from the run log). Both sit behind the token like the rest of the API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import NotFoundError
from .. import stats
from ..telemetry import metrics_text
from .security import error_response

__all__ = ["routes"]


async def get_metrics(_request: Request) -> Response:
    exposition = metrics_text()
    if exposition is None:
        return error_response(NotFoundError(
            "metrics are off: set settings.telemetry.prometheus = true in the config (with the otel extra: "
            "pip install 'llmmixer[otel]') and restart llmmixer serve"), 404)
    body, content_type = exposition
    return Response(body, media_type=content_type)


async def get_stats(request: Request) -> Response:
    since = stats.parse_since(request.query_params.get("since") or "7d")
    records = [record async for record in stats.records_since(request.app.state.store, since)]
    return JSONResponse(stats.compute(records, since).to_dict())


def routes() -> list[BaseRoute]:
    return [Route("/metrics", get_metrics, methods=["GET"]), Route("/api/stats", get_stats, methods=["GET"])]
