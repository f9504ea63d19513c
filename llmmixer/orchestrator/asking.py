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

__all__ = ["AskOptions", "ask_request", "default_log_store", "public_result", "start_ask", "PUBLIC_KEYS"]

PUBLIC_KEYS = ("mode", "winner", "data", "legs", "total_cost_usd", "total_cost_partial", "latency_ms", "run_id",
               "conversation_id", "status", "error", "synthesis", "verdict", "recovery")


@dataclass
class AskOptions:
    """An ask as the CLI's options give it: the :class:`~.requests.AskRequest` fields but the prompt, and what the
    CLI resolves against the run log and the model listings before the request (``-m``, ``-c``)."""

    fields: dict[str, Any] = field(default_factory=dict)  # AskRequest's, without the prompt
    model_ids: list[str] = field(default_factory=list)  # -m/--model: model ids or aliases, servers found for them
    continue_latest: bool = False  # -c: the latest conversation, unless fields name one


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
    """Start the ask ``options`` describe (resolving ``-c`` and ``-m``); returns the run id.

    Raises:
        LLMMixerError: ``invalid_input`` for an unknown model or server, ``not_found`` for an unknown conversation.
    """
    from ..servers.core.errors import NotFoundError

    update: dict[str, Any] = {}
    if options.continue_latest and options.fields.get("conversation_id") is None:
        update["conversation_id"] = await runs.latest_conversation()
        if update["conversation_id"] is None:
            raise NotFoundError("no conversation to continue yet: ask something first (without -c)")
    if options.model_ids:
        from .models import resolve_model_ids

        chosen = await resolve_model_ids(runs, options.model_ids)
        update["models"] = [source for source, _ in chosen]
        update["model_for"] = {**(options.fields.get("model_for") or {}), **dict(chosen)}
    return await runs.start(ask_request(prompt, options, **update))
