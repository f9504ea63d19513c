"""What a run kind is (:class:`RunKind`), and the registry :meth:`.runs.Runs.start` dispatches through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from ...servers.core.events import EventType
    from ..costcap import SpendMeter
    from ..pool import Admission
    from ..results import RunResult
    from ..runs import Runs, RunState
    from ..statuses import RunStatus

__all__ = ["RunKind", "KINDS", "register", "kind_for", "Emit", "INTERRUPTED"]

Emit = Callable[["EventType", str, dict[str, Any]], None]  # (type, source, data): the run's events, in order
INTERRUPTED = "interrupted: the service stopped while this run was in flight; each leg keeps what it had produced"


class RunKind(ABC):
    """One run of one kind, from its checked request to its typed result.

    :meth:`Runs.start <.runs.Runs.start>` calls, in order: :meth:`prepare` (refuse the run before anything is held),
    :meth:`open` (the run has its id and state; say what the run log keeps), :meth:`run` (in the run's cancel
    scope), :meth:`result` (how it ended).
    """

    name: ClassVar[str]  # ask | command | agent: the run's ``kind`` on the wire
    mode: str | None = None
    title: dict[str, str]  # {"prompt": ...}, {"command": ...} or {"task": ...}, for run lists
    places: list[str]  # a place in the queue of each server the run's legs call, one per leg (pool.Admission)
    spend: SpendMeter | None = None  # a cost cap Runs watches the run's events against (costcap.py)
    conversation_id: str | None = None  # an ask's conversation (shown in its snapshot and result)
    models: list[str] | None = None  # an ask's legs, in order (shown while it runs)
    state: RunState

    @classmethod
    @abstractmethod
    async def prepare(cls, runs: Runs, request: Any) -> Self:
        """The run ``request`` describes, checked against what only the service knows (configured servers, the
        store's conversations, the day's budget...); raises before anything is held."""

    @abstractmethod
    def open(self, state: RunState) -> dict[str, Any]:
        """The run has its id: what the run log keeps of it (``history.new_record``). May still refuse the run."""

    @abstractmethod
    async def run(self, emit: Emit, admission: Admission) -> None:
        """Run to the end, emitting the run's events; ``admission`` holds the run's places in its servers' queues,
        given back one by one as its legs get their slots. Cancelled through the run's scope."""

    @abstractmethod
    def result(self) -> tuple[RunStatus, RunResult]:
        """How the run ended and its result (read once :meth:`run` has returned or been cancelled)."""


K = TypeVar("K", bound=type[RunKind])
KINDS: dict[type[BaseModel], type[RunKind]] = {}


def register(request: type[BaseModel]) -> Callable[[K], K]:
    """Class decorator: the run kind that runs ``request``."""

    def add(cls: K) -> K:
        KINDS[request] = cls
        return cls

    return add


def kind_for(request: BaseModel) -> type[RunKind]:
    """The run kind of ``request``: an AskRequest, CommandRequest or AgentRequest (or a door's subclass of one)."""
    from . import agent, ask, command  # noqa: F401 - each registers its kind

    return next(KINDS[cls] for cls in type(request).__mro__ if cls in KINDS)
