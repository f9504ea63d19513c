"""What ``llmmixer ask`` and ``llmmixer chat`` share: their options, where the run log lives, the printed result.

Light on imports on purpose: the CLI imports this module before parsing arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mixer import MixOptions
    from .runs import Runs

__all__ = ["AskOptions", "default_log_store", "public_result", "start_ask", "resolve_choice", "request_body",
           "PUBLIC_KEYS"]

PUBLIC_KEYS = ("mode", "winner", "data", "legs", "total_cost_usd", "total_cost_partial", "latency_ms", "run_id",
               "conversation_id", "status", "error", "synthesis", "verdict", "recovery")


@dataclass
class AskOptions:
    models: str | list[str] | None = None  # servers (--models)
    mode: str | None = None
    system: str | None = None
    model_for: dict[str, str] = field(default_factory=dict)
    model_ids: list[str] = field(default_factory=list)  # -m/--model: model ids or aliases, servers found for them
    schema: dict[str, Any] | None = None
    continue_latest: bool = False
    conversation_id: str | None = None
    reasoning: str | None = None  # off | low | medium | high
    images: list[dict[str, Any]] = field(default_factory=list)  # [{"path"} | {"url"} | {"data", "media_type"}]
    mix: MixOptions | None = None  # synthesize / judge: aggregator, rounds, min_answers, deadline_s


def default_log_store() -> str:
    """The run log ``ask``, ``chat`` and ``logs`` use when no store is configured: a SQLite file in the user's data
    directory (``$XDG_DATA_HOME/llmmixer/logs.db`` on Linux), as simonw/llm keeps its logs."""
    import platformdirs

    path = os.path.join(platformdirs.user_data_dir("llmmixer"), "logs.db")
    return f"sqlite:///{os.path.abspath(path)}"


def public_result(final: dict[str, Any]) -> dict[str, Any]:
    """The ``ask --json`` object."""
    return {k: final[k] for k in PUBLIC_KEYS if k in final}


async def resolve_choice(runs: Any, options: AskOptions) -> tuple[str | None, str | list[str] | None, dict[str, str]]:
    """``(conversation_id, models, model_for)`` for ``-c``/``--cid``, ``--models``, ``-m`` and ``--model-for``.

    Raises:
        LLMMixerError: ``invalid_input`` for an unknown model or server, ``not_found`` when there is no conversation
            to continue.
    """
    from ..servers.core.errors import NotFoundError

    conversation_id = options.conversation_id
    if options.continue_latest and conversation_id is None:
        conversation_id = await runs.latest_conversation()
        if conversation_id is None:
            raise NotFoundError("no conversation to continue yet: ask something first (without -c)")
    models, model_for = options.models, dict(options.model_for)
    if options.model_ids:
        from .models import resolve_model_ids

        chosen = await resolve_model_ids(runs, options.model_ids)
        servers = [source for source, _ in chosen]
        if len(set(servers)) == len(servers):
            models = servers
            model_for.update(dict(chosen))
        else:  # two models of one server: a leg each, named SERVER:MODEL (legs.py)
            models = [f"{source}:{model}" for source, model in chosen]
    return conversation_id, models, model_for


async def start_ask(runs: Runs, prompt: str, options: AskOptions) -> str:
    """Start the ask ``options`` describe (resolving ``-c`` and ``-m``); returns the run id.

    Raises:
        LLMMixerError: ``invalid_input`` for an unknown model or server, ``not_found`` for an unknown conversation.
    """
    conversation_id, models, model_for = await resolve_choice(runs, options)
    return await runs.start_ask(prompt, models=models, mode=options.mode, system=options.system,
                                model_for=model_for or None, response_schema=options.schema,
                                conversation_id=conversation_id, reasoning=options.reasoning,
                                images=options.images or None, options=options.mix)


def request_body(prompt: str, options: AskOptions) -> dict[str, Any]:
    """The ``POST /api/runs`` body for the same ask (the thin client's): image files are read here, as the
    service may not see this filesystem the same way."""
    mix = options.mix
    body: dict[str, Any] = {
        "prompt": prompt, "models": options.models, "mode": options.mode, "system": options.system,
        "model_for": options.model_for or None, "model_ids": options.model_ids or None,
        "response_schema": options.schema, "continue_latest": options.continue_latest or None,
        "conversation_id": options.conversation_id, "reasoning": options.reasoning,
        "aggregator": mix.aggregator if mix else None, "min_answers": mix.min_answers if mix else None,
        "deadline_s": mix.deadline_s if mix else None,
    }
    if mix is not None and mix.rounds != 1:
        body["rounds"] = mix.rounds
    if options.images:
        from ..servers.core.images import load

        body["images"] = []
        for image in options.images:
            loaded = load(image)
            body["images"].append({"url": loaded.url} if loaded.url else
                                  {"data": loaded.data, "media_type": loaded.media_type})
    return {key: value for key, value in body.items() if value is not None}
