"""``llmmixer mcp``: the orchestrator itself as one small MCP server, for Claude Desktop and other MCP hosts.

Five tools and nothing else, so the schemas an MCP host pays for on every turn stay under 2,000 tokens:

- ``ask``: one prompt across the model adapters in any mode of :mod:`.modes`; text deltas go out as progress
  notifications (``message`` = ``"<source>: <delta>"``); the result is the ``llmmixer ask --json`` object.
- ``run_command``: one shell command through the PTY runner; output goes out as progress.
- ``agent``: coding agents (Claude Code, Codex, Gemini CLI) race on a task in their own git worktrees; a check
  command decides (the ``llmmixer agent --json`` object). Agents run for minutes: this is a job almost always.
- ``job`` and ``cancel``: for runs that outlive the call.

Hosts time a tool call out (Claude Desktop after about 60 s). So a call waits at most ``wait_s`` (default 45) and
then returns ``{"job_id", "status": "running", "partial"}``; the run goes on in the orchestrator, and ``job`` reads
it later, also after a restart when the event store persists (sqlite, redis). If the host cancels the call while it
waits, the run is cancelled end to end: no model keeps streaming for nobody.

The server advertises only the tools capability; argument errors come back as ``invalid_input`` results that say
what to change. A job that ended in ``error`` (an ``ask`` where no leg succeeded, a command the runner refused) is an
``isError: true`` result: the plain ``KIND: message`` line, then the job object with an ``error`` that sums its legs'
errors up.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, Tool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..servers.core.errors import RETRYABLE_KINDS, ErrorKind, InvalidInputError, LLMMixerError, NotFoundError
from ..servers.core.annotations import acts, reads
from ..servers.core.mcp import LLMMixerMCPServer
from ..servers.core.results import job_result
from ..servers.core.transport import add_transport_arguments, exit_at_once, serve_async

from .mcp_app import UI_META, CallJobs, HideAppTools, race_app
from .mcp_schema import compact_schema
from .modes import DEFAULT_MODE, MODES, described_modes
from .requests import AgentRequest, AskRequest, CommandRequest, request_parameters, validate_request
from .runs import Runs
from .service import RunService
from .shutdown import on_signal

__all__ = ["MODES", "OrchestratorMCPServer", "build_server", "main", "main_mcp"]

log = logging.getLogger("llmmixer.mcp_server")

# Below Claude Desktop's ~60 s tool-call timeout, with room for the host's own overhead.
DEFAULT_WAIT_S = 45.0
MAX_WAIT_S = 3600.0
STOP_GRACE_S = 0.5  # after SIGTERM, between the interrupted runs' results and the end of serving


# ---------------------------------------------------------------------------------------------------------------
# Output shapes (kept flat and loose on purpose: every property costs tokens in every host turn)


class LegOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str
    status: str = Field(description="won|done|cancelled|error")
    text: str | None = None
    usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    error: dict[str, Any] | None = None


class AskOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    status: str = Field(description="done|running|cancelled|error")
    mode: str | None = None
    winner: str | None = None
    legs: list[LegOut] | None = None
    total_cost_usd: float | None = None
    conversation_id: str | None = Field(default=None, description="pass it back to continue")
    data: Any = Field(default=None, description="the typed answer")
    partial: dict[str, str] | None = Field(default=None, description="text so far per model")


class CommandOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    status: str = Field(description="done|running|cancelled|error")
    exit_code: int | None = None
    output: str | None = None
    truncated: bool | None = None
    timed_out: bool | None = None
    duration_ms: float | None = None
    partial: str | None = Field(default=None, description="output so far")


class AgentOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    status: str = Field(description="done|running|cancelled|error")
    winner: str | None = None
    diff: str | None = None
    legs: list[dict[str, Any]] | None = None


class JobOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    kind: str = Field(description="ask|command|agent")
    status: str = Field(description="done|running|cancelled|error")


# ---------------------------------------------------------------------------------------------------------------
# The server


def _explain(exc: ToolError) -> str:
    """A short, actionable message for a rejected argument; never echoes long values such as a prompt."""
    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return str(exc)
    parts = []
    for err in cause.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        value = err.get("input")
        shown = f" (got {value!r})" if isinstance(value, int | float | bool) or (
            isinstance(value, str) and len(value) <= 40) else ""
        parts.append(f"{where}: {err['msg']}{shown if err['type'] != 'missing' else ''}")
    return "; ".join(parts)


class OrchestratorMCPServer(LLMMixerMCPServer):
    """Tools, and the race view's resource for MCP Apps hosts (:mod:`.mcp_app`): compact schemas on the wire,
    argument errors that name the argument."""

    unserved_methods = tuple(m for m in LLMMixerMCPServer.unserved_methods
                             if m not in ("resources/list", "resources/read"))

    async def list_tools(self) -> list[Tool]:
        tools = await super().list_tools()
        return [t.model_copy(update={"input_schema": compact_schema(t.input_schema),
                                     "output_schema": compact_schema(t.output_schema)}) for t in tools]

    def explain_tool_error(self, exc: ToolError) -> str:
        return _explain(exc)


def _job_id(jobs: RunService, job_id: str) -> str:
    """``job_id`` if it has the shape of one; an ``invalid_input`` error that says where ids come from if not."""
    try:
        return jobs.check_id(job_id)
    except InvalidInputError:
        raise InvalidInputError("malformed job id: pass the job_id that ask, run_command or agent returned") from None


def _unknown_job(job_id: str) -> InvalidInputError:
    # For the caller this is bad input like any other: the id was never issued, or the store has dropped it.
    return InvalidInputError(f"unknown job id {job_id!r}: no such job (never started, or older than the event "
                             "store keeps)")


ASK_DESCRIPTION = (
    f"Ask several models one prompt. mode (default {DEFAULT_MODE}, or as configured): {described_modes()}. Deltas stream as "
    "progress. Past wait_s, returns {job_id, status: running, partial}: call job later."
)
RUN_DESCRIPTION = (
    "Run a shell command in a terminal (the PTY runner's policy applies). Output streams as progress. Past wait_s, "
    "returns {job_id, status: running, partial}: call job later."
)
AGENT_DESCRIPTION = (
    "Coding agents (claude-code, codex, gemini-cli) do a task, each in a git worktree; `check` (shell) "
    "decides. race: first passer wins, others stop; all: all run. Returns the winner's diff "
    "(apply=true applies it). Usually a job."
)
JOB_DESCRIPTION = (
    "A job's result when done, else partial output. wait_s waits for the end."
)
CANCEL_DESCRIPTION = "Cancel a running job and all it started."

JobId = Annotated[str, Field(description="from ask, run_command or agent")]
WaitS = Annotated[float, Field(ge=0, le=MAX_WAIT_S, description="seconds, then return a job")]


def build_server(jobs: RunService, *, max_wait_s: float = MAX_WAIT_S) -> OrchestratorMCPServer:
    """The five tools over the run service (:class:`Runs` owns the runs, the store and the MCP pool).

    ``max_wait_s`` caps every ``wait_s``: the host's own tool-call timeout less a margin (``llmmixer config HOST``
    sets it), so a call becomes a job before the host gives up on it, whatever ``wait_s`` the model asked for.
    """
    calls = CallJobs()
    server = OrchestratorMCPServer(
        name="llmmixer",
        instructions="LLMMixer: ask several models together (race them, hedge, fan out) and run shell commands.",
        extensions=[race_app(jobs, calls)],
        middleware=[HideAppTools()],
    )

    async def ask(ctx: Context, wait_s: float = DEFAULT_WAIT_S, **fields: Any) -> CallToolResult:
        job_id = await jobs.start(validate_request(AskRequest, fields))
        calls.started(ctx, job_id)
        return _result(await _follow(jobs, job_id, min(wait_s, max_wait_s), ctx, cancel_on_abort=True))

    async def run_command(ctx: Context, wait_s: float = DEFAULT_WAIT_S, **fields: Any) -> CallToolResult:
        job_id = await jobs.start(validate_request(CommandRequest, fields))
        return _result(await _follow(jobs, job_id, min(wait_s, max_wait_s), ctx, cancel_on_abort=True))

    async def agent(ctx: Context, wait_s: float = DEFAULT_WAIT_S, **fields: Any) -> CallToolResult:
        job_id = await jobs.start(validate_request(AgentRequest, fields))
        calls.started(ctx, job_id)
        return job_result(await _follow(jobs, job_id, min(wait_s, max_wait_s), ctx, cancel_on_abort=True))

    server.tool(description=ASK_DESCRIPTION, annotations=reads("Ask several models", open_world=True), meta=UI_META)(
        _request_tool(ask, AskRequest, AskOut))
    server.tool(description=RUN_DESCRIPTION, annotations=acts("Run a shell command", destructive=True,
                                                              open_world=True))(
        _request_tool(run_command, CommandRequest, CommandOut))
    server.tool(description=AGENT_DESCRIPTION, annotations=acts("Race coding agents", destructive=True,
                                                                open_world=True), meta=UI_META)(
        _request_tool(agent, AgentRequest, AgentOut))

    @server.tool(description=JOB_DESCRIPTION, annotations=reads("Read a job", open_world=False))
    async def job(job_id: JobId, ctx: Context, wait_s: WaitS = 0) -> Annotated[CallToolResult, JobOut]:
        _job_id(jobs, job_id)
        try:
            return _result(await _follow(jobs, job_id, min(wait_s, max_wait_s), ctx, cancel_on_abort=False))
        except NotFoundError:
            raise _unknown_job(job_id) from None

    @server.tool(description=CANCEL_DESCRIPTION,
                 annotations=acts("Cancel a job", destructive=False, open_world=False, idempotent=True))
    async def cancel(job_id: JobId) -> Annotated[CallToolResult, JobOut]:
        _job_id(jobs, job_id)
        try:
            return _result(await jobs.cancel(job_id))
        except NotFoundError:
            raise _unknown_job(job_id) from None

    return server


# Request fields the MCP tools leave out: a host brings its own conversation and tools (they are for the gateway's
# API callers), and passes conversation_id back rather than continue a shared service's newest conversation; every
# property costs tokens in every turn of the host. Images are declared as plain objects there, for the same reason.
NOT_ON_MCP = frozenset({"messages", "tools", "tool_choice", "continue_latest"})
LOOSE_ON_MCP = frozenset({"images"})


def _request_tool(fn: Callable[..., Any], model: type[BaseModel], out: type[BaseModel]) -> Callable[..., Any]:
    """``fn`` (``ctx``, ``wait_s`` and the request's fields as ``**fields``) with the signature the MCP SDK reads:
    the request model's fields (less :data:`NOT_ON_MCP`) as the tool's arguments, then ``wait_s``; ``out`` as the
    declared output schema."""
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*request_parameters(model, skip=NOT_ON_MCP, loose=LOOSE_ON_MCP, size_caps=False),
         inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
         inspect.Parameter("wait_s", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_WAIT_S, annotation=WaitS)],
        return_annotation=Annotated[CallToolResult, out])
    return fn


def _result(job: dict[str, Any]) -> CallToolResult:
    """The tool result for a job: ``isError: true`` (text only) when the job ended in ``error``."""
    if job.get("status") != "error":
        return job_result(job)
    if isinstance(job.get("error"), dict):
        return job_result(job, is_error=True)
    failed = [leg for leg in job.get("legs") or [] if isinstance(leg.get("error"), dict)]
    kinds = [str(leg["error"].get("kind", "server")) for leg in failed]
    if len(set(kinds)) == 1:
        kind = kinds[0]
    else:  # mixed: a retryable one if there is one, so a caller may still try again
        kind = next((k for k in kinds if k in {r.value for r in RETRYABLE_KINDS}), kinds[0] if kinds else "server")
    try:
        retryable = ErrorKind(kind) in RETRYABLE_KINDS
    except ValueError:
        kind, retryable = "server", True
    summary = "; ".join(f"{leg.get('source')}: {leg['error'].get('kind')}: {leg['error'].get('message')}"
                        for leg in failed)
    # The soonest any failed leg may be tried again: what a host's model should wait before it asks again.
    delays = [leg["error"]["retry_after_s"] for leg in failed
              if isinstance(leg["error"].get("retry_after_s"), int | float) and leg["error"]["retry_after_s"] > 0]
    error = {"kind": kind, "message": f"no model answered ({summary or 'every leg failed'})", "vendor": None,
             "status": None, "retry_after_s": min(delays) if delays and retryable else None, "retryable": retryable}
    return job_result({**job, "error": error}, is_error=True)


async def _follow(jobs: RunService, job_id: str, wait_s: float, ctx: Context, *, cancel_on_abort: bool) -> dict[str, Any]:
    """Forward the job's deltas as progress for up to ``wait_s``; then its final result, or its status and partial.

    If the caller cancels the tool call meanwhile and ``cancel_on_abort`` is set, the job is cancelled too (shielded,
    so the cancellation itself cannot be cut short).
    """
    sent = 0

    async def forward() -> None:
        nonlocal sent
        async for source, text in jobs.deltas(job_id):
            sent += 1
            await ctx.report_progress(sent, None, f"{source}: {text}")

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(forward)
            if not await jobs.wait(job_id, wait_s):
                tg.cancel_scope.cancel()
            # A finished job's delta stream ends by itself once every delta is out: let it drain, so the host has
            # seen the whole text as progress before it gets the result.
    except anyio.get_cancelled_exc_class():
        if cancel_on_abort:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await jobs.cancel(job_id)
        raise
    return await jobs.snapshot(job_id)


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def build_parser(prog: str = "llmmixer mcp") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="The LLMMixer orchestrator as one MCP server.")
    add_transport_arguments(parser)
    parser.add_argument("--config", default=None, help="servers config file (mcpServers JSON)")
    parser.add_argument("--store", default=None, help="event store URL: memory, sqlite:///path, redis://host:port/db")
    parser.add_argument("--max-wait-s", type=float, default=MAX_WAIT_S, metavar="S",
                        help="the longest a tool call waits before it returns a job: below the host's tool timeout "
                             "(llmmixer config HOST sets it)")
    return parser


def main_mcp(args: argparse.Namespace) -> None:
    """Serve until the host closes stdin or the process is stopped (``llmmixer mcp`` calls this)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .config import load_config
    from .stores import open_store

    try:
        config = load_config(args.config)
        store = open_store(args.store or config.settings.store)
    except LLMMixerError as error:
        sys.stderr.write(f"llmmixer mcp: {error.message}\n")
        raise SystemExit(2) from error

    async def run() -> None:
        async with Runs(config, store) as runs:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                # SIGTERM/SIGINT: the runs in flight end as interrupted (their waiting tool calls answer with
                # that), they are stored, then serving stops.
                stopped = anyio.Event()

                async def stop_serving() -> None:
                    await stop.wait()
                    await anyio.sleep(STOP_GRACE_S)  # let the interrupted calls' results go out
                    stopped.set()  # HTTP: uvicorn shuts down gracefully (no traceback from a cut lifespan)
                    if args.transport == "stdio":
                        tg.cancel_scope.cancel()

                tg.start_soon(on_signal, runs, stop)
                tg.start_soon(stop_serving)
                await serve_async(build_server(runs, max_wait_s=args.max_wait_s), args, stop=stopped)
                tg.cancel_scope.cancel()

    anyio.run(run)
    exit_at_once()  # the runs are stored and the pool closed: skip the interpreter's teardown


def main(argv: Sequence[str] | None = None) -> int:
    main_mcp(build_parser().parse_args(None if argv is None else list(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
