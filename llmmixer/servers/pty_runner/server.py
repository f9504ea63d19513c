"""The PTY runner's MCP face: run, start, send, read, wait, resize, kill, list_sessions.

Every command (``run``, ``start``) and every line typed into a shell session (``send``) passes the policy first.
The check runs as a ``Resolve(...)`` resolver, before the tool body: an ``ask`` verdict becomes an MCP elicitation
(``Elicit``), which the SDK carries the way the connection needs (an ``InputRequiredResult`` round on modern
connections, ``elicitation/create`` on older ones). A client that did not declare elicitation is never asked: the
command is refused. A refusal is an error of kind ``policy`` naming the rule.

``run`` streams its output as progress notifications while the command runs. Errors are tool results with
``isError: true`` and ``{"error": {...}}`` from the shared error tree; every error message, detail and log line
passes the runner's redactor (its secrets, and inline ``NAME=key`` values) first.

With the sandbox on, the parse-time check is the early, explained refusal, not the boundary: the sandbox and the
exec-time guards are. A program refused by a guard makes ``run`` an error of kind ``policy`` naming the rule (its
``details.result`` holds the command's result) and a session report a ``pty.refused`` event.
"""

# No `from __future__ import annotations` here: the tools' `Resolve(gate.…)` annotations must be evaluated where
# they are written, while `gate` is in scope.

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from ..core.errors import InvalidInputError, LLMMixerError, PolicyError
from ..core.mcp import LLMMixerMCPServer
from ..core.redact import redact_inline
from ..core.annotations import acts, reads
from ..core.results import ok_result
from .output import plain_text
from .policy import Policy, Verdict, strictest
from .runner import PtyRunner

__all__ = ["build_pty_server", "PolicyGate", "Approval"]

log = logging.getLogger("llmmixer.pty.server")


class Approval(BaseModel):
    approve: bool = Field(description="Run it?")


# -- output schemas ----------------------------------------------------------------------------------------------


class RunOutput(BaseModel):
    exit_code: int | None = Field(description="the command's exit code; negative: killed by that signal (in the "
                                              "sandbox an `exit 128+N` reads the same); null when it timed out")
    output: str = Field(description="terminal output, ANSI kept (the last bytes when truncated)")
    truncated: bool
    output_bytes: int = Field(description="bytes the command wrote (more than `output` holds when truncated)")
    timed_out: bool
    duration_ms: float
    backend: Literal["pty", "pipe"]
    sandbox: str = Field(description="`bubblewrap` when the command ran sandboxed; otherwise `off` and why")
    plain: str | None = Field(default=None, description="output without escape sequences, when plain=true")


class StartOutput(BaseModel):
    session_id: str
    pid: int
    backend: Literal["pty", "pipe"]
    sandbox: str = Field(description="`bubblewrap` when the session runs sandboxed; otherwise `off` and why")


class SendOutput(BaseModel):
    session_id: str
    sent_bytes: int
    held_bytes: int = Field(description="pipe sessions into a shell: typed text kept until its line ends")


class SessionOutput(BaseModel):
    session_id: str
    output: str = Field(description="output after the requested offset, ANSI kept")
    offset: int = Field(description="offset after the returned output: pass it as `since` to continue")
    dropped: int = Field(description="bytes between `since` and the oldest byte still held (buffer overflow)")
    waiting_for_input: bool
    waiting_layer: str | None = Field(description="kernel | quiescence | prompt: the layer that decided")
    exited: bool
    exit_code: int | None
    events: list[dict[str, Any]] = Field(description="pty.* events since the last read (auto_respond answers, "
                                                     "exit)")
    timed_out: bool = False
    plain: str | None = None
    screen: str | None = Field(default=None, description="the rendered terminal screen, when screen=true")


class ResizeOutput(BaseModel):
    session_id: str
    cols: int
    rows: int


class KillOutput(BaseModel):
    session_id: str
    signal: str
    exited: bool
    exit_code: int | None


class SessionInfo(BaseModel):
    session_id: str
    command: str
    pid: int
    backend: Literal["pty", "pipe"]
    exited: bool
    exit_code: int | None
    offset: int
    idle_s: float
    cols: int
    rows: int


class SessionsOutput(BaseModel):
    sessions: list[SessionInfo]


class AutoRespondRule(BaseModel):
    pattern: str = Field(description="regex searched in the recent plain-text output")
    send: str = Field(description="text to type when it matches (include \\r or \\n to press enter)")
    once: bool = True
    delay_ms: int = Field(default=0, ge=0, le=60_000, description="wait this long before typing the answer")


# -- the policy gate ---------------------------------------------------------------------------------------------


def _can_elicit(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


class PolicyGate:
    """Resolvers that turn policy verdicts into an approval outcome before a tool body runs."""

    def __init__(self, policy: Policy, runner: PtyRunner) -> None:
        self.policy = policy
        self.runner = runner

    # Verdicts (no I/O except /proc reads for send); never raise: the tool body reports bad input itself.
    def run_verdict(self, command: str, cwd: str | None, stdin: str | None) -> Verdict:
        try:
            self.runner.check_command(command)
            path = self.runner.resolve_cwd(cwd)
        except (InvalidInputError, PolicyError):
            return Verdict("allow")  # the tool body refuses it, with the same error
        return self.policy.check(command, cwd=path, stdin=stdin)

    async def send_verdict(self, session_id: str, text: str | None, keys: list[str] | None) -> Verdict:
        if self.policy.is_permissive:
            return Verdict("allow")
        session = self.runner.sessions.get(session_id)
        if session is None:
            return Verdict("allow")
        try:
            plan = self.runner.plan_send(session, text, keys)
        except InvalidInputError:
            return Verdict("allow")
        if not plan.lines:
            return Verdict("allow")
        context = await self.runner.shell_context(session)
        if context == "none":
            return Verdict("allow")
        verdicts = [self.policy.check_typed_line(line.text, certain=line.certain, shell_reads=context == "shell",
                                                 cwd=session.cwd) for line in plan.lines]
        return strictest(verdicts) or Verdict("allow")

    def _ask(self, verdict: Verdict, what: str, ctx: Context) -> Elicit[Approval] | Verdict:
        if verdict.action != "ask":
            return verdict
        if not _can_elicit(ctx):
            return Verdict("deny", verdict.rule, verdict.command,
                           "approval is required and this client cannot be asked (no elicitation capability)")
        rules = ", ".join(verdict.asks) or verdict.rule or "ask"
        return Elicit(f"The command policy asks before running this ({rules}):\n\n{what}\n\nRun it?", Approval)

    async def for_run(self, command: str, cwd: str | None, stdin: str | None,
                      ctx: Context) -> Elicit[Approval] | Verdict:
        return self._ask(self.run_verdict(command, cwd, stdin), command, ctx)

    async def for_start(self, command: str, cwd: str | None, ctx: Context) -> Elicit[Approval] | Verdict:
        return self._ask(self.run_verdict(command, cwd, None), command, ctx)

    async def for_send(self, session_id: str, text: str | None, keys: list[str] | None,
                       ctx: Context) -> Elicit[Approval] | Verdict:
        verdict = await self.send_verdict(session_id, text, keys)
        return self._ask(verdict, verdict.command or (text or ""), ctx)


def _refusal(outcome: ElicitationResult[Any], verdict: Verdict) -> PolicyError | None:
    """None when the command may run; otherwise the policy error to return."""
    if isinstance(outcome, AcceptedElicitation):
        data = outcome.data
        if isinstance(data, Verdict):
            return None if data.allowed else data.error()
        if isinstance(data, Approval) and data.approve:
            return None
        return verdict.error(f"not approved by the host (policy rule `{verdict.rule}`)")
    answer = {"decline": "declined", "cancel": "cancelled"}.get(outcome.action, outcome.action)
    return verdict.error(f"the host {answer} the approval request (policy rule `{verdict.rule}`)")


# -- the server --------------------------------------------------------------------------------------------------

INSTRUCTIONS = (
    "Runs shell commands in a real pseudo-terminal. `run` for one command (output streams as progress); `start` an "
    "interactive session, then `send` text/keys, `read` output, `wait` until it waits for input or exits. Commands "
    "and lines typed into shells are checked against a policy; refusals are errors of kind `policy`. "
)

WRITABLE = Field(default=None, description="more absolute directories it may write (created), e.g. a fresh HOME")
ENV = Field(default=None, description="variables to set")
SECRETS = Field(default=None, description="variables to set whose values are redacted from all output")
SCREEN = Field(default=False, description="keep a rendered terminal screen (TUIs): read/wait screen=true, "
                                          "auto_respond on it, no input wait before it shows anything")


def _sandbox_note(runner: PtyRunner) -> str:
    if runner.sandbox_info.startswith("bubblewrap"):
        return ("Sandboxed: read-only outside cwd, writable and a private /tmp; denied programs never run.")
    return f"Not sandboxed ({runner.sandbox_info})."


def _redacted(runner: PtyRunner, error: LLMMixerError) -> LLMMixerError:
    redactor = runner.containment.redactor
    error.message = redact_inline(redactor.redact(error.message))
    if error.details:
        error.details = redactor.redact_any(error.details)  # type: ignore[assignment]
    return error


def _exec_refusal(result: Any, body: dict[str, Any]) -> PolicyError:
    first = result.refused[0]
    message = (f"`{first['program']}` was refused when it was executed, by policy rule `{first['rule']}`"
               f" ({len(result.refused)} refusal{'s' if len(result.refused) != 1 else ''})")
    return PolicyError(message, details={"rule": first["rule"], "program": first["program"], "action": "deny",
                                         "refused": list(result.refused), "result": body})


class PtyMCPServer(LLMMixerMCPServer):
    """The runner's server: every tool error is redacted of the runner's secrets at the one boundary."""

    def __init__(self, runner: PtyRunner, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runner = runner

    def classified(self, name: str, error: LLMMixerError) -> LLMMixerError:
        error = _redacted(self.runner, error)
        log.info("%s refused or failed: %s %s", name, error.kind.value, error.message)
        return error


def build_pty_server(runner: PtyRunner, policy: Policy | None = None) -> LLMMixerMCPServer:
    """The MCP server for ``runner``; its lifespan runs the runner (leaving it kills every child)."""
    policy = policy or Policy.permissive()
    runner.containment.use_policy(policy)
    gate = PolicyGate(policy, runner)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[dict[str, Any]]:
        async with runner.running():
            yield {}

    note = _sandbox_note(runner)
    status = ("sandbox on (" + runner.sandbox_info + ")" if runner.sandbox_info.startswith("bubblewrap")
              else "sandbox " + runner.sandbox_info)
    server = PtyMCPServer(runner, name="llmmixer-pty", instructions=f"{INSTRUCTIONS}{note}\nStatus: {status}",
                          lifespan=lifespan)

    def approved(outcome: ElicitationResult[Any], verdict: Verdict) -> tuple[str, ...]:
        return verdict.asks if verdict.action == "ask" and isinstance(outcome, AcceptedElicitation) else ()

    @server.tool(annotations=acts("Run a shell command", destructive=True, open_world=True),
                 description="Run one shell command (bash) to completion in a pseudo-terminal. Output streams as "
                             "progress notifications; on timeout the whole process group is killed. " + note)
    async def run(
        command: str,
        ctx: Context,
        approval: Annotated[ElicitationResult[Approval], Resolve(gate.for_run)],
        cwd: str | None = None,
        timeout_s: float = 30.0,
        stdin: str | None = None,
        plain: bool = False,
        writable: Annotated[list[str] | None, WRITABLE] = None,
        env: Annotated[dict[str, str] | None, ENV] = None,
        secrets: Annotated[dict[str, str] | None, SECRETS] = None,
    ) -> Annotated[CallToolResult, RunOutput]:
        verdict = gate.run_verdict(command, cwd, stdin)
        refusal = _refusal(approval, verdict)
        if refusal is not None:
            raise refusal
        sent = 0

        async def progress(text: str) -> None:
            nonlocal sent
            sent += 1
            await ctx.report_progress(sent, None, text)

        async def asker(message: str) -> bool:
            try:  # a question in the middle of a call: legacy connections only
                answer = await ctx.elicit(message, Approval)
            except Exception:  # noqa: BLE001 - cannot ask: the guard refuses
                return False
            return isinstance(answer, AcceptedElicitation) and bool(answer.data.approve)

        result = await runner.run(command, cwd=cwd, timeout_s=timeout_s, stdin=stdin, on_output=progress,
                                  writable=tuple(writable or ()), env=env, secrets=secrets, asker=asker,
                                  approvals=approved(approval, verdict))
        body = result.to_dict()
        if plain:
            body["plain"] = plain_text(result.output)
        if result.refused:
            raise _exec_refusal(result, body)
        return ok_result(body)

    @server.tool(annotations=acts("Start a terminal session", destructive=True, open_world=True),
                 description="Start an interactive session (bash -c COMMAND) in a pseudo-terminal. auto_respond "
                             "rules answer known prompts; each answer is reported as an event. auto_respond text "
                             "is not parsed: the sandbox contains it. " + note)
    async def start(
        command: str,
        approval: Annotated[ElicitationResult[Approval], Resolve(gate.for_start)],
        cwd: str | None = None,
        cols: int = 120,
        rows: int = 40,
        auto_respond: list[AutoRespondRule] | None = None,
        writable: Annotated[list[str] | None, WRITABLE] = None,
        env: Annotated[dict[str, str] | None, ENV] = None,
        secrets: Annotated[dict[str, str] | None, SECRETS] = None,
        screen: Annotated[bool, SCREEN] = False,
    ) -> Annotated[CallToolResult, StartOutput]:
        verdict = gate.run_verdict(command, cwd, None)
        refusal = _refusal(approval, verdict)
        if refusal is not None:
            raise refusal
        session = await runner.start(command, cwd=cwd, cols=cols, rows=rows,
                                     auto_respond=[rule.model_dump() for rule in auto_respond or ()],
                                     writable=tuple(writable or ()), env=env, secrets=secrets,
                                     approvals=approved(approval, verdict), screen=screen)
        return ok_result({"session_id": session.id, "pid": session.child.pid, "backend": session.backend,
                          "sandbox": runner.sandbox_info if session.child.sandboxed else "off"})

    @server.tool(annotations=acts("Type into a session", destructive=True, open_world=True),
                 description="Type text and/or press named keys in a session: enter, tab, esc, backspace, up, "
                             "down, left, right, ctrl-c, ctrl-d, ctrl-z. Lines typed into a shell are checked "
                             "against the policy when they end; lines read by another program (a REPL) are not "
                             "parsed: the sandbox contains them.")
    async def send(
        session_id: str,
        approval: Annotated[ElicitationResult[Approval], Resolve(gate.for_send)],
        text: str | None = None,
        keys: list[str] | None = None,
        keys_delay_ms: int = 100,
    ) -> Annotated[CallToolResult, SendOutput]:
        session = runner.get(session_id)
        if not 0 <= keys_delay_ms <= 10_000:
            raise InvalidInputError("keys_delay_ms must be between 0 and 10000")
        plan = runner.plan_send(session, text, keys, keys_delay_ms / 1000)
        context = await runner.shell_context(session)
        verdict = await gate.send_verdict(session_id, text, keys)
        refusal = _refusal(approval, verdict)
        if refusal is not None:
            await runner.refuse_send(session)
            raise refusal
        if plan.lines:
            runner.set_approvals(session, approved(approval, verdict))
        await runner.send(session, plan, hold_partial_lines=session.backend == "pipe" and context != "none")
        return ok_result({"session_id": session.id, "sent_bytes": plan.size, "held_bytes": len(session.held)})

    @server.tool(annotations=reads("Read a session's output", open_world=False),
                 description="Read a session's output after `since` (default: where the last read ended), "
                             "waiting up to wait_s for some. Tells whether the program waits for input.")
    async def read(
        session_id: str,
        since: int | None = None,
        wait_s: float = 0.0,
        plain: bool = False,
        screen: bool = False,
    ) -> Annotated[CallToolResult, SessionOutput]:
        view = await runner.read(runner.get(session_id), since=since, wait_s=wait_s, plain=plain, screen=screen)
        return ok_result(view.to_dict())

    @server.tool(annotations=reads("Wait for a session", open_world=False),
                 description="Wait until the session's program waits for input (until='input') or exits "
                             "(until='exit'), at most timeout_s; returns the output since the last read.")
    async def wait(
        session_id: str,
        until: Literal["input", "exit"] = "input",
        timeout_s: float = 300.0,
        plain: bool = False,
        screen: bool = False,
    ) -> Annotated[CallToolResult, SessionOutput]:
        view = await runner.wait(runner.get(session_id), until=until, timeout_s=timeout_s, plain=plain,
                                 screen=screen)
        return ok_result(view.to_dict())

    @server.tool(annotations=acts("Resize a session", destructive=False, open_world=False, idempotent=True),
                 description="Change a session's terminal size (the program gets SIGWINCH).")
    async def resize(session_id: str, cols: int, rows: int) -> Annotated[CallToolResult, ResizeOutput]:
        session = runner.get(session_id)
        runner.resize(session, cols, rows)
        return ok_result({"session_id": session.id, "cols": session.cols, "rows": session.rows})

    @server.tool(annotations=acts("Signal a session", destructive=True, open_world=False, idempotent=True),
                 description="Send a signal (default TERM, escalating to KILL) to a session's whole process "
                             "group.")
    async def kill(session_id: str, signal: str = "TERM") -> Annotated[CallToolResult, KillOutput]:
        session = await runner.kill(runner.get(session_id), signal)
        return ok_result({"session_id": session.id, "signal": signal.upper().removeprefix("SIG"),
                          "exited": session.exited, "exit_code": session.exit_code})

    @server.tool(annotations=reads("List sessions", open_world=False, idempotent=True),
                 description="Every session: live ones and recently exited ones.")
    async def list_sessions() -> Annotated[CallToolResult, SessionsOutput]:
        return ok_result({"sessions": runner.list()})

    return server
