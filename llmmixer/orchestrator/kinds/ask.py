"""An ask: one prompt across the model servers, run by the mixer in the mode's strategy (:mod:`..mixer`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self

from ...servers.core.errors import BudgetError, InvalidInputError, LLMMixerError, NotFoundError
from ...servers.core.images import ImageInput, load
from ...servers.core.manifest import manifest_for
from .. import costcap, history
from ..costcap import SpendMeter
from ..legs import parse_leg, server_of
from ..mixer import MixResult
from ..modes import check_mode
from ..requests import AskRequest, MixOptions
from ..results import AskResult
from .base import INTERRUPTED, Emit, RunKind, register

if TYPE_CHECKING:
    from ..pool import Admission
    from ..runs import Runs, RunState
    from ..statuses import RunStatus

__all__ = ["Ask", "CONVERSATION_ID"]

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@register(AskRequest)
class Ask(RunKind):
    """Start an ask. ``conversation_id`` continues that conversation (its history goes to the models as
    ``messages``); without one the run starts a new conversation. Images given as ``path`` are read here and sent
    on as base64 (see servers/core/images.py)."""

    name = "ask"
    mode: str

    def __init__(self, runs: Runs, request: AskRequest, *, mode: str, sources: list[str],
                 arguments: dict[str, Any], system: str | None, prompt_chars: int) -> None:
        self.runs, self.request = runs, request
        self.mode, self.sources, self.arguments, self.system = mode, sources, arguments, system
        self.title = {"prompt": request.prompt[:200]}
        self.models = sources
        self.places = [server_of(source) for source in sources]  # a leg holds a place on its server (legs.py)
        self.conversation_id = request.conversation_id or history.new_conversation_id()
        if request.max_cost_usd is not None:
            self.spend = SpendMeter(request.max_cost_usd, prompt_chars, dict(runs.config.settings.prices))
        self.mix = MixResult(mode=mode, legs=[])
        self.error: LLMMixerError | None = None

    @classmethod
    async def prepare(cls, runs: Runs, request: AskRequest) -> Self:
        request = await _resolve_choice(runs, request)
        mode = request.mode or runs.config.settings.mode
        check_mode(mode)
        sources = runs.resolve_models(request.models)
        _check_aggregator(request, runs.config.model_sources)
        portable_images = _portable_images(request.images)
        thread, system = await _thread(runs, request.conversation_id, request.system)
        messages = [message.model_dump(mode="json", exclude_none=True) for message in request.messages or ()]
        prompt_chars = len(request.prompt) + len(system or "") + sum(len(str(m.get("content", "")))
                                                                     for m in [*thread, *messages])
        await _check_cost(runs, prompt_chars, sources, request.model_for or {}, request.max_tokens,
                          request.max_cost_usd)
        arguments: dict[str, Any] = {"prompt": request.prompt}
        tools = [tool.model_dump(mode="json", exclude_none=True) for tool in request.tools or ()] or None
        tool_choice = request.tool_choice
        for key, value in (("system", system), ("max_tokens", request.max_tokens),
                           ("temperature", request.temperature), ("response_schema", request.response_schema),
                           ("reasoning", request.reasoning), ("images", portable_images), ("tools", tools),
                           ("tool_choice", tool_choice if isinstance(tool_choice, str | None)
                            else tool_choice.model_dump())):
            if value is not None:
                arguments[key] = value
        if thread or messages:
            arguments["messages"] = [*thread, *messages]
        return cls(runs, request, mode=mode, sources=sources, arguments=arguments, system=system,
                   prompt_chars=prompt_chars)

    def open(self, state: RunState) -> dict[str, Any]:
        self.state = state
        state.mix = self.mix
        request = self.request
        options = {k: v for k, v in (("max_tokens", request.max_tokens), ("temperature", request.temperature),
                                     ("response_schema", request.response_schema),
                                     ("reasoning", request.reasoning),
                                     ("model_for", request.model_for or None)) if v is not None}
        return history.new_record(state.run_id, "ask", conversation_id=self.conversation_id, prompt=request.prompt,
                                  system=self.system, models=self.sources, mode=self.mode, options=options)

    async def run(self, emit: Emit, admission: Admission) -> None:
        arguments = self.arguments
        emit("run.started", "orchestrator", {"kind": "ask", "mode": self.mode, "models": self.sources,
                                             "prompt_chars": len(arguments["prompt"]),
                                             "images": len(arguments.get("images") or []),
                                             "prompt": arguments["prompt"][:200],
                                             "conversation_id": self.conversation_id,
                                             "history_turns": len(arguments.get("messages") or ())})
        try:
            await self.runs.mixer.mix(arguments, self.sources, self.mode, emit, self.mix,
                                      self.request.model_for or {}, self.request, admission)
        except LLMMixerError as error:
            self.error = error

    def result(self) -> tuple[RunStatus, AskResult]:
        state, mix = self.state, self.mix
        if self.error is not None:
            return "error", AskResult(mode=self.mode, winner=None, legs=[], total_cost_usd=None,
                                      error=self.error.to_dict()["error"])
        if state.interrupted:
            return "interrupted", mix.result().model_copy(update={"message": INTERRUPTED})
        status: RunStatus = "cancelled" if state.cancel_requested else ("done" if mix.ok else "error")
        final = mix.result()
        if self.spend is not None:
            final = final.model_copy(update={"cost_cap": self.spend.to_dict()})
            if self.spend.stopped and not state.cancel_requested:
                status = "done" if mix.ok else "cancelled"
        return status, final


async def _resolve_choice(runs: Runs, request: AskRequest) -> AskRequest:
    """``request`` with ``continue_latest`` (ask -c) and ``model_ids`` (ask -m) resolved into the conversation, the
    servers and the model per server they name.

    Raises:
        NotFoundError: there is no conversation to continue.
        InvalidInputError: a model id or alias no server offers.
    """
    update: dict[str, Any] = {}
    if request.continue_latest and request.conversation_id is None:
        update["conversation_id"] = await runs.latest_conversation()
        if update["conversation_id"] is None:
            raise NotFoundError("no conversation to continue yet: ask something first (without -c)")
    if request.model_ids:
        from ..models import resolve_model_ids

        chosen = await resolve_model_ids(runs, request.model_ids)
        servers = [source for source, _ in chosen]
        if len(set(servers)) == len(servers):
            update["models"] = servers
            update["model_for"] = {**(request.model_for or {}), **dict(chosen)}
        else:  # two models of one server: a leg each, named SERVER:MODEL (legs.py)
            update["models"] = [f"{source}:{model}" for source, model in chosen]
    return request.model_copy(update=update) if update else request


async def _thread(runs: Runs, conversation_id: str | None, system: str | None
                  ) -> tuple[list[dict[str, str]], str | None]:
    """The ``messages`` continuing ``conversation_id`` and the system prompt to use (the thread's own unless one is
    given)."""
    if conversation_id is None:
        return [], system
    if not isinstance(conversation_id, str) or not CONVERSATION_ID.match(conversation_id):
        raise InvalidInputError("malformed conversation id: pass the conversation_id a run returned")
    records = await runs.store.conversation_runs(conversation_id, history.MAX_HISTORY_RUNS)
    if not records:
        raise NotFoundError(f"no conversation {conversation_id!r} (unknown, or older than the store keeps)")
    if system is None:
        system = next((r.get("system") for r in reversed(records) if r.get("system")), None)
    return history.messages_for(records), system


async def _check_cost(runs: Runs, prompt_chars: int, sources: list[str], model_for: dict[str, str],
                      max_tokens: int | None, max_cost_usd: float | None) -> None:
    """Refuse a run whose certain spend is over its cap, or over what is left of the day's budget."""
    settings = runs.config.settings
    budget = settings.budget
    if max_cost_usd is None and budget is None:
        return
    models = []
    for source in sources:  # a leg name: its own model, else the server's (legs.py)
        server, model = parse_leg(source)
        models.append(model or model_for.get(source) or model_for.get(server) or runs.mixer.model_for.get(server)
                      or runs.pool.default_model(server) or getattr(manifest_for(server), "default_model", None))
    estimate = costcap.estimate_usd(prompt_chars, models, max_tokens, dict(settings.prices))
    if max_cost_usd is not None and estimate > max_cost_usd:
        raise BudgetError(f"this run would cost at least ${estimate:.6f} ({len(sources)} legs, their prompts"
                          f"{' and max_tokens' if max_tokens else ''}), over its max_cost_usd of "
                          f"${max_cost_usd:.6f}; raise the cap, or ask fewer models",
                          details={"estimate_usd": estimate, "max_cost_usd": max_cost_usd})
    costcap.check_budget(budget, await runs.spent_today(), estimate)


def _check_aggregator(options: MixOptions, available: list[str]) -> None:
    if options.aggregator is not None and options.aggregator not in available:
        raise InvalidInputError(f"unknown aggregator {options.aggregator!r}; available: {', '.join(available)}")


def _portable_images(images: list[ImageInput] | None) -> list[dict[str, Any]] | None:
    """Images as the adapters take them, with files read here (an adapter may not share this filesystem)."""
    if not images:
        return None
    out = []
    for index, image in enumerate(images):
        checked = load(image, f"images[{index}]")
        out.append({"url": checked.url} if checked.url is not None else
                   {"data": checked.data, "media_type": checked.media_type})
    return out
