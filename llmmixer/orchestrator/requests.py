"""The run requests: one pydantic model per run kind, the one contract behind every front door.

:class:`AskRequest` (one prompt across the model servers), :class:`CommandRequest` (one shell command on the PTY
runner) and :class:`AgentRequest` (coding agents on a task) are what :meth:`.runs.Runs.start` takes. Every door
builds or validates into them and adds nothing of its own but how it is called:

- the CLI (``llmmixer ask|run|agent``) builds them from its options;
- the HTTP API validates the JSON body into them (``POST /api/runs``, ``/api/commands``, ``/api/agents``);
- the orchestrator's MCP tools (``ask``, ``run_command``, ``agent``) take their fields as arguments
  (:func:`request_parameters` derives the tool signature from the model, so a new field is a new argument);
- the gateway's vendor dialects validate into :class:`AskRequest`.

The models forbid unknown fields and check every value once, here: a door never re-checks ``rounds``. What only
the running service can check (a model server or aggregator that is configured, a conversation the store holds,
a git repository) is checked when the run starts. ``tests/test_requests.py`` proves each field reachable from
every door that should have it. Adding an ask parameter is one field here plus its renderers (the CLI option; the
adapters' use of it): see CONTRIBUTING.md.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..servers.core.capabilities import Reasoning
from ..servers.core.errors import InvalidInputError
from ..servers.core.images import ImageInput
from ..servers.core.messages import ChatMessage, ToolChoice, ToolSpec
from .config import ModeName

__all__ = ["MAX_PROMPT_CHARS", "MixOptions", "AskRequest", "CommandRequest", "AgentRequest", "RunRequest",
           "validate_request", "request_parameters"]

MAX_PROMPT_CHARS = 200_000
MAX_COMMAND_CHARS = 100_000
MAX_PATH_CHARS = 4096
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


# A run's spend cap in USD (costcap.py), for an ask and for agents alike.
MaxCostUsd = Annotated[float | None, Field(gt=0, allow_inf_nan=False, description="USD cap")]


def _comma_list(value: Any) -> Any:
    """``"a, b"`` as ``["a", "b"]``; an empty list or string as None (the default)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return value or None


class MixOptions(BaseModel):
    """The settings of the combining modes (``synthesize``, ``judge``; see :mod:`.moa`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregator: str | None = Field(default=None, description="the combining model")
    rounds: int = Field(default=1, ge=1, le=5, description="synthesize: layers")
    min_answers: int | None = Field(default=None, ge=1, description="synthesize: answers needed")
    deadline_s: float | None = Field(default=None, gt=0, le=3600, description="seconds to wait for answers")


class AskRequest(MixOptions):
    """One prompt across the model servers. ``models`` is a list or a comma-separated string; absent means the
    configured default; ``mode`` absent means the configured mode."""

    prompt: str = Field(max_length=MAX_PROMPT_CHARS)
    models: list[str] | None = None
    mode: ModeName | None = None
    system: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    conversation_id: str | None = Field(default=None, max_length=64, description="continue this conversation")
    continue_latest: bool = Field(default=False, description="continue the newest conversation (ask -c)")
    model_ids: list[str] | None = Field(default=None, max_length=16, description="model ids or aliases")
    response_schema: dict[str, Any] | str | None = Field(
        default=None, description="a JSON Schema, or 'name, age int, bio: one sentence'")
    model_for: dict[str, str] | None = Field(default=None, description="model id per server")
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    reasoning: Reasoning | None = None
    max_cost_usd: MaxCostUsd = None
    images: list[ImageInput] | None = Field(default=None, max_length=20,
                                            description="[{url}|{data, media_type}|{path}]")
    # Earlier turns (tool calls and results included) after the conversation's own; the prompt may then be empty
    # when they end with the user's turn. Tools go to every leg. (The vendor dialects of the gateway use them.)
    messages: list[ChatMessage] | None = Field(default=None, max_length=10_000)
    tools: list[ToolSpec] | None = Field(default=None, max_length=512)
    tool_choice: ToolChoice | None = None

    @model_validator(mode="after")
    def _prompt(self) -> AskRequest:
        if not self.prompt.strip() and not self.messages:
            raise InvalidInputError("prompt is empty: give the question to ask the models")
        return self

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("response_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from .schemas import parse_schema

        return parse_schema(value)

    @field_validator("model_for", mode="before")
    @classmethod
    def _model_for(cls, value: Any) -> Any:
        return value or None


class CommandRequest(BaseModel):
    """One shell command line for the PTY runner (its policy decides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(max_length=MAX_COMMAND_CHARS)
    cwd: str | None = Field(default=None, max_length=MAX_PATH_CHARS)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400, description="kill the command after this")

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not value.strip():
            raise InvalidInputError("command is empty: give the shell command to run")
        return value


def default_agents() -> list[str]:
    """Every agent CLI: ``AgentRequest.agents`` when none are named."""
    from .agents.spec import CLIS

    return list(CLIS)


class AgentRequest(BaseModel):
    """Coding agents on a task in a git repository; ``check`` (a shell command run in each worktree) decides.
    ``agents`` absent means every agent CLI; ``mode`` is one of ``modes.AGENT_MODES`` (checked when it starts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(max_length=MAX_PROMPT_CHARS)
    check: str = Field(default="", max_length=MAX_COMMAND_CHARS)  # required but when continuing
    agents: list[str] = Field(default_factory=default_agents)
    mode: str = Field(default="race", max_length=20, description="race or all")
    cwd: str | None = Field(default=None, max_length=MAX_PATH_CHARS,
                            description="git repo")
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)  # seconds each agent may run
    apply: bool = False  # apply the winner's diff to the repository
    keep: bool | None = Field(default=None, description="each leg as a branch")
    setup: str | None = Field(default=None, max_length=MAX_COMMAND_CHARS,
                              description="run in each worktree first")
    model: str | None = Field(default=None, min_length=1, max_length=1000,
                              description="gateway model for all, e.g. race/claude,gpt")
    pick: Literal["first", "best"] = Field(
        default="first", description="best: a judge ranks passers")
    grace_s: float = Field(default=60.0, ge=0, le=3600, description="best: seconds others may still pass")
    judge: str | None = Field(default=None, max_length=64, description="best: judging server")
    base: Literal["head", "worktree"] = Field(default="head", description="worktree: with uncommitted work")
    max_cost_usd: MaxCostUsd = None
    continue_run: str | None = Field(default=None, description="resume this run's kept legs with task")

    @property
    def keeps(self) -> bool:
        """Whether every leg is kept as a branch ``llmmixer/<run>/<agent>``."""
        return self.keep if self.keep is not None else self.mode == "all"

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, value: Any) -> Any:
        return _comma_list(value) or default_agents()

    @field_validator("continue_run")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID.fullmatch(value):
            raise InvalidInputError(f"continue_run: {value[:80]!r} is not a run id")
        return value


RunRequest = AskRequest | CommandRequest | AgentRequest
R = TypeVar("R", bound=BaseModel)


def validate_request(model: type[R], payload: Any) -> R:
    """``payload`` (a JSON object) as ``model``, every failure an ``invalid_input`` error that says what is wrong.

    Raises:
        InvalidInputError: not an object, an unknown field, a value of the wrong type or size (``details.problems``
            lists each as ``{"field", "problem"}``).
    """
    if isinstance(payload, model):
        return payload
    if not isinstance(payload, dict):
        raise InvalidInputError("request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"].removeprefix("Value error, ")}
                    for err in exc.errors()]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems)
        raise InvalidInputError(f"invalid request: {summary}", details={"problems": problems}) from None


def _is_cap(constraint: Any) -> bool:
    """A bound no caller comes near (a length, an hour or more, a million tokens): the model still applies it."""
    from annotated_types import Le, MaxLen, MinLen

    if isinstance(constraint, MaxLen | MinLen):
        return True
    return isinstance(constraint, Le) and isinstance(constraint.le, int | float) and constraint.le >= 3600


def request_parameters(model: type[BaseModel], *, skip: frozenset[str] = frozenset(),
                       loose: frozenset[str] = frozenset(), size_caps: bool = True) -> list[inspect.Parameter]:
    """The fields of ``model`` as keyword parameters for a tool signature: the same types, bounds, defaults and
    descriptions, so an MCP tool's input schema is the model's (less ``skip``).

    A schema costs tokens in every turn of an MCP host, so ``loose`` fields (lists of objects) are declared as plain
    JSON objects instead of the model's nested one and ``size_caps=False`` leaves out the length caps; the tool
    body validates what it is given with :func:`validate_request`, which applies the model whole.
    """
    from typing import Annotated

    params = []
    own = [name for name in model.model_fields if name in vars(model).get("__annotations__", {})]
    for name in [*own, *(name for name in model.model_fields if name not in own)]:  # the model's own fields first
        info = model.model_fields[name]
        if name in skip:
            continue
        annotation: Any = info.annotation
        default: Any = inspect.Parameter.empty if info.is_required() else info.default
        if info.default_factory is not None:  # a computed default: the model fills it in for an absent (None) value
            annotation, default = annotation | None, None
        if name in loose:
            annotation = list[dict[str, Any]] | None
        metadata = [item for item in info.metadata if size_caps or not _is_cap(item)]
        annotation = Annotated[(annotation, *metadata, Field(description=info.description))]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params
