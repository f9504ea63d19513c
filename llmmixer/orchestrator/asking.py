"""What ``llmmixer ask`` and ``llmmixer chat`` share: their options, where the run log lives, the printed result.

Light on imports on purpose: the CLI imports this module before parsing arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .requests import AskRequest
    from .runs import Runs

__all__ = ["AskOptions", "ask_request", "default_log_store", "public_result", "start_ask", "request_body",
           "PUBLIC_KEYS"]

PUBLIC_KEYS = ("mode", "winner", "data", "legs", "total_cost_usd", "total_cost_partial", "latency_ms", "run_id",
               "conversation_id", "status", "error", "synthesis", "verdict", "recovery")


@dataclass
class AskOptions:
    """An ask as the CLI's options give it: the :class:`~.requests.AskRequest` fields but the prompt (``-m`` is
    ``model_ids``, ``-c`` is ``continue_latest``: the service resolves them)."""

    fields: dict[str, Any] = field(default_factory=dict)


def ask_request(prompt: str, options: AskOptions, **update: Any) -> AskRequest:
    """The request for ``prompt``: ``options.fields`` and ``update`` validated together.

    Raises:
        InvalidInputError: a field the request refuses (saying which and why).
    """
    from .requests import AskRequest, validate_request

    return validate_request(AskRequest, {**options.fields, **update, "prompt": prompt})


def default_log_store() -> str:
    """The run log ``ask``, ``chat`` and ``logs`` use when no store is configured: a SQLite file in the user's data
    directory (``$XDG_DATA_HOME/llmmixer/logs.db`` on Linux), as simonw/llm keeps its logs."""
    import platformdirs

    path = os.path.join(platformdirs.user_data_dir("llmmixer"), "logs.db")
    return f"sqlite:///{os.path.abspath(path)}"


def public_result(final: dict[str, Any]) -> dict[str, Any]:
    """The ``ask --json`` object."""
    return {k: final[k] for k in PUBLIC_KEYS if k in final}


async def start_ask(runs: Runs, prompt: str, options: AskOptions) -> str:
    """Start the ask ``options`` describe; returns the run id.

    Raises:
        LLMMixerError: ``invalid_input`` for an unknown model or server, ``not_found`` for an unknown conversation.
    """
    return await runs.start(ask_request(prompt, options))


def request_body(prompt: str, options: AskOptions) -> dict[str, Any]:
    """The ``POST /api/runs`` body for the same ask (the thin client's): the request's JSON, with image files read
    here, as the service may not see this filesystem the same way.

    Raises:
        InvalidInputError: a field the request refuses; an unreadable image.
    """
    from ..servers.core.images import load

    request = ask_request(prompt, options)
    body = request.model_dump(mode="json", exclude_defaults=True)
    if request.images:
        body["images"] = [{"url": image.url} if image.url else {"data": image.data, "media_type": image.media_type}
                          for image in map(load, request.images)]
    return body
