"""``llmmixer``: ask several models at once, run commands, serve the dashboard, plug into MCP hosts.

Heavy modules (the MCP SDK, rich's live display, uvicorn) are imported inside the commands, so ``--help`` and
usage errors answer at once. Exit codes scripts can rely on: 0 ok, 1 every leg failed (or the command failed),
2 a usage error.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .asking import AskOptions, default_log_store, public_result, start_ask
from .modes import AGENT_MODES, DEFAULT_MODE, modes_help

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .remote import RemoteRuns
    from .requests import R, AgentRequest, CommandRequest
    from .runs import Runs
    from .runtime import RuntimeInfo

__all__ = ["app", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="llmmixer",
    help="Use Claude, GPT and Gemini together: race them, fan out, fall back; run commands; watch it live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich's help renderer imports a Markdown parser and triples the start-up time of `--help`.
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Generate configuration for MCP hosts.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")
logs_app = typer.Typer(help="Browse the run log: prompts, answers, costs (llmmixer logs show ID for one run).",
                       invoke_without_command=True, rich_markup_mode=None)
app.add_typer(logs_app, name="logs")
from .agent_cli import agent_app  # noqa: E402 - beside the other groups

app.add_typer(agent_app, name="agent")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        __version__ = version("llmmixer")

        typer.echo(f"llmmixer {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """Use Claude, GPT and Gemini together: race them, fan out, fall back; run commands; watch it live."""

ConfigOpt = Annotated[str | None, typer.Option("--config", help="servers config (mcpServers JSON)")]
MaxCostOpt = Annotated[float | None, typer.Option(help="the most this run may cost, in USD")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="event store: memory | sqlite:///path | redis://…")]
StandaloneOpt = Annotated[bool, typer.Option(
    "--standalone", help="run in this process, not on the resident service (also settings.resident = false)")]
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _fail_usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def _read_prompt(prompt: str | None) -> str:
    if prompt is None or prompt == "-":
        if sys.stdin.isatty():
            raise _fail_usage("give a prompt, or pipe one on stdin: echo hi | llmmixer ask -")
        prompt = sys.stdin.read()
    if not prompt or not prompt.strip():
        raise _fail_usage("the prompt is empty")
    return prompt


def _parse_model_for(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        source, sep, model = pair.partition("=")
        if not sep or not source or not model:
            raise _fail_usage(f"--model-for takes SOURCE=MODEL, e.g. claude=claude-opus-4-1; got {pair!r}")
        out[source.strip()] = model.strip()
    return out


async def _open_runs(config_path: str | None, store_url: str | None, *, logging_store: bool = False) -> Runs:
    """The run service; ``logging_store``: with no store configured, the user's run log (``default_log_store``)
    instead of memory, so ``-c`` and ``logs`` work across invocations."""
    from ..servers.core.errors import LLMMixerError
    from .config import load_config
    from .runs import Runs
    from .stores import open_store

    try:
        config = load_config(config_path)
        url = store_url or config.settings.store or (default_log_store() if logging_store else None)
        store = open_store(url)
    except LLMMixerError as error:
        raise _fail_usage(error.message) from error
    return Runs(config, store)


def _reasoning_help() -> str:
    from ..servers.core.capabilities import REASONING_LEVELS

    return " | ".join(REASONING_LEVELS)


@app.command()
def ask(
    prompt: Annotated[str | None, typer.Argument(help="the prompt; '-' or nothing reads stdin")] = None,
    models: Annotated[str | None, typer.Option("--models", help="comma list of servers, e.g. claude,gpt "
                                                                "(default: settings.models)")] = None,
    model: Annotated[list[str], typer.Option(
        "--model", "-m", help="a model id or alias (llmmixer models); its server is found; repeatable")] = [],  # noqa: B006
    mode: Annotated[str | None, typer.Option(help=modes_help())] = None,
    model_for: Annotated[list[str], typer.Option("--model-for", help="SOURCE=MODEL, repeatable")] = [],  # noqa: B006
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    aggregator: Annotated[str | None, typer.Option(
        "--aggregator", "--judge", help="the server that aggregates (synthesize) or judges (judge); default: the first")
    ] = None,
    rounds: Annotated[int, typer.Option(help="synthesize: mixture-of-agents layers")] = 1,
    min_answers: Annotated[int | None, typer.Option(help="synthesize: answers needed to aggregate (default 2)")
                           ] = None,
    deadline: Annotated[float | None, typer.Option(help="synthesize and judge: seconds to wait for the answers")] = None,
    reasoning: Annotated[str | None, typer.Option(help=_reasoning_help())] = None,
    max_tokens: Annotated[int | None, typer.Option(help="the most tokens each model may write")] = None,
    temperature: Annotated[float | None, typer.Option(help="sampling temperature, 0 to 2")] = None,
    max_cost: MaxCostOpt = None,
    image: Annotated[list[str], typer.Option("--image", help="an image file to send, repeatable")] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="print one final JSON object")] = False,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="continue the latest conversation")] = False,
    cid: Annotated[str | None, typer.Option("--cid", help="continue the conversation with this id")] = None,
    schema: Annotated[str | None, typer.Option(
        "--schema", help="typed answer: a JSON Schema file or text, or fields 'name, age int, bio: one sentence'")] = None,
    data_only: Annotated[bool, typer.Option("--data", help="print only the typed answer (with --schema)")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    standalone: StandaloneOpt = False,
) -> None:
    """Ask several models one prompt; each streams live in its own panel."""
    text = _read_prompt(prompt)
    if continue_ and cid:
        raise _fail_usage("give -c (the latest conversation) or --cid ID, not both")
    if data_only and schema is None:
        raise _fail_usage("--data prints the typed answer of --schema: give --schema too (e.g. --schema 'name, "
                          "age int'), or use --json for the whole result")
    options = AskOptions(fields=ask_fields(models=models, mode=mode, model_for=model_for, system=system,
                                           aggregator=aggregator, rounds=rounds, min_answers=min_answers,
                                           deadline=deadline, reasoning=reasoning, max_tokens=max_tokens,
                                           temperature=temperature, image=image, cid=cid, schema=schema,
                                           model=model, continue_=continue_, max_cost=max_cost))
    _check_request(text, options)
    output = "data" if data_only else ("json" if as_json else "live")
    service = _service(config, store, standalone, start=True)
    if service is not None:
        raise typer.Exit(_on_service(service, lambda runs, started: _remote_ask(runs, started, text, options, output),
                                     config))
    code = _run_async(_ask(text, options, output, config, store))
    raise typer.Exit(code)


def ask_fields(*, models: str | None = None, mode: str | None = None, model_for: list[str] | None = None,
               system: str | None = None, aggregator: str | None = None, rounds: int = 1,
               min_answers: int | None = None, deadline: float | None = None, reasoning: str | None = None,
               max_tokens: int | None = None, temperature: float | None = None, image: list[str] | None = None,
               cid: str | None = None, schema: str | None = None, model: list[str] | None = None,
               continue_: bool = False, max_cost: float | None = None) -> dict[str, Any]:
    """The :class:`~.requests.AskRequest` fields (all but the prompt) that ``ask``'s options name, by field name.

    Raises:
        typer.Exit: a malformed ``--model-for`` or ``--schema``.
    """
    if models is not None and not [m for m in models.split(",") if m.strip()]:
        raise _fail_usage("--models is empty: name servers such as claude,gpt, or leave it out for all of them")
    fields: dict[str, Any] = {
        "models": models, "mode": mode, "system": system, "model_for": _parse_model_for(model_for or []),
        "aggregator": aggregator, "rounds": rounds, "min_answers": min_answers, "deadline_s": deadline,
        "reasoning": reasoning, "max_tokens": max_tokens, "temperature": temperature,
        "images": [{"path": path} for path in image or []], "conversation_id": cid,
        "response_schema": _parse_schema(schema), "model_ids": model, "continue_latest": continue_ or None,
        "max_cost_usd": max_cost}
    return {name: value for name, value in fields.items() if value not in (None, [], {})}


def _check_request(prompt: str, options: AskOptions) -> None:
    """Refuse a bad option before anything starts (exit 2), as the request would."""
    from .requests import AskRequest

    _request(AskRequest, {**options.fields, "prompt": prompt})


def _parse_schema(schema: str | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    from ..servers.core.errors import LLMMixerError
    from .schemas import parse_schema

    try:
        return parse_schema(schema, allow_files=True)
    except LLMMixerError as error:
        raise _fail_usage(f"--schema: {error.message}") from error


def _run_async(coro: Any) -> int:
    import anyio

    from ..servers.core.errors import LLMMixerError

    async def runner() -> int:
        try:
            return await coro
        except LLMMixerError as error:
            typer.echo(f"error: {error.kind.value}: {error.message}", err=True)
            return EXIT_USAGE if error.kind.value == "invalid_input" else EXIT_FAILED

    try:
        return anyio.run(runner)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _ask(prompt: str, options: AskOptions, output: str, config: str | None, store: str | None) -> int:
    from .live import follow_ask

    async with await _open_runs(config, store, logging_store=True) as runs:
        run_id = await start_ask(runs, prompt, options)
        final = await follow_ask(runs, run_id, live=output == "live")
        # Printed the moment it is final: closing the servers and the run log comes after, not before.
        code = _report_ask(final, output)
        sys.stdout.flush()
    return code


def _report_ask(final: dict[str, Any], output: str) -> int:
    if output == "json":
        typer.echo(json.dumps(public_result(final), ensure_ascii=False, indent=2))
    elif output == "data":
        if "data" not in final:
            typer.echo("error: no typed answer (give --schema, and see the legs' errors with --json)", err=True)
            return EXIT_FAILED
        typer.echo(json.dumps(final["data"], ensure_ascii=False, indent=2))
    if final.get("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_OK if final.get("status") == "done" else EXIT_FAILED


# -- the resident service ---------------------------------------------------------------------------------------------


def _service(config: str | None, store: str | None, standalone: bool, *, start: bool) -> RuntimeInfo | None:
    """The resident service this command runs on, or None for the in-process path (``--standalone``, a
    ``--store`` of its own, ``settings.resident = false``, or a service that could not start)."""
    if standalone or store:
        return None
    from .resident import connect

    return connect(config, start=start)


def _on_service(info: RuntimeInfo, work: Callable[[RemoteRuns, list[str]], Awaitable[int]],
                config: str | None = None) -> int:
    """Run ``work`` against the service; Ctrl-C cancels on the service every run it started. A service that left
    between being found and being called (it was idle) is replaced once, by a new one."""
    from ..servers.core.errors import ConnectionFailedError
    from .remote import RemoteRuns, cancel_now
    from .resident import connect

    started: list[str] = []
    service = info

    async def go() -> int:
        import anyio.to_thread

        nonlocal service
        for attempt in (1, 2):
            try:
                async with RemoteRuns(service) as runs:
                    return await work(runs, started)
            except ConnectionFailedError:
                if started or attempt == 2:
                    raise
                replaced = await anyio.to_thread.run_sync(lambda: connect(config, start=True))
                if replaced is None:
                    raise
                service = replaced
        raise AssertionError("unreachable")

    code = _run_async(go())
    if code == EXIT_INTERRUPTED:
        for run_id in started:
            cancel_now(service, run_id)
    return code


async def _remote_ask(runs: RemoteRuns, started: list[str], prompt: str, options: AskOptions, output: str) -> int:
    from .asking import request_body
    from .live import follow_ask

    run_id = await runs.start_ask(request_body(prompt, options))
    started.append(run_id)
    return _report_ask(await follow_ask(runs, run_id, live=output == "live"), output)


@app.command()
def chat(
    models: Annotated[str | None, typer.Option("--models", help="servers, a comma list: claude,gpt,gemini")] = None,
    model: Annotated[list[str], typer.Option("--model", "-m", help="a model id or alias; repeatable")] = [],  # noqa: B006
    mode: Annotated[str | None, typer.Option(help=modes_help())] = None,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="continue the latest conversation")] = False,
    cid: Annotated[str | None, typer.Option("--cid", help="continue the conversation with this id")] = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    standalone: StandaloneOpt = False,
) -> None:
    """Chat in a loop: each message goes to the models with the conversation so far ('exit' or Ctrl-D ends)."""
    from .chat import run_chat

    if continue_ and cid:
        raise _fail_usage("give -c (the latest conversation) or --cid ID, not both")
    options = AskOptions(fields=ask_fields(models=models, mode=mode, system=system, cid=cid, model=model,
                                           continue_=continue_))
    _check_request("(chat)", options)

    service = _service(config, store, standalone, start=True)
    if service is not None:
        from .asking import request_body

        async def remote(runs: RemoteRuns, started: list[str]) -> int:
            async def start(line: str, chosen: AskOptions) -> str:
                run_id = await runs.start_ask(request_body(line, chosen))
                started.append(run_id)
                return run_id

            return await run_chat(runs, options, start)

        raise typer.Exit(_on_service(service, remote, config))

    async def go() -> int:
        async with await _open_runs(config, store, logging_store=True) as runs:
            return await run_chat(runs, options, lambda line, chosen: start_ask(runs, line, chosen))

    raise typer.Exit(_run_async(go()))


@app.command()
def models(config: ConfigOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False,
           refresh: Annotated[bool, typer.Option("--refresh", help="ask every server now, not the cache (starts "
                                                                  "them without a running service)")] = False,
           standalone: StandaloneOpt = False) -> None:
    """Every model server's models, their aliases and prices; the default of each server is marked."""
    service = _service(config, None, standalone, start=False)

    async def go() -> int:
        if service is not None:
            from .remote import RemoteRuns

            async with RemoteRuns(service) as remote:
                listings = await remote.models()
        elif refresh:
            from .models import list_all_models

            async with await _open_runs(config, "memory") as runs:
                listings = await list_all_models(runs)
        else:  # the manifests plus what the servers listed last (model_cache.py); only a never-listed one is asked
            from .config import load_config
            from .model_cache import cached_listings
            from .models import list_all_models

            listings = cached_listings(load_config(config))
            never = [listing["source"] for listing in listings if listing["listed_at"] is None]
            if never:
                async with await _open_runs(config, "memory") as runs:
                    live = {item["source"]: item for item in await list_all_models(runs, never)}
                listings = [live.get(listing["source"], listing) for listing in listings]
        if as_json:
            typer.echo(json.dumps({"servers": listings}, indent=2))
        else:
            from .logs import print_models

            print_models(listings)
        return EXIT_OK if any(listing["models"] for listing in listings) else EXIT_FAILED

    raise typer.Exit(_run_async(go()))


@logs_app.callback()
def logs(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="how many runs, newest first")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: one run record each")] = False,
    query: Annotated[str | None, typer.Option("-q", "--query", help="only runs whose prompt or answer has TEXT")] = None,
    cid: Annotated[str | None, typer.Option("--cid", help="only this conversation, oldest first")] = None,
    show_stats: Annotated[bool, typer.Option("--stats", help="what racing bought and spent, per mode and model: "
                                             "runs, p50/p95 against the best single model, spend on cancelled "
                                             "legs")] = False,
    since: Annotated[str, typer.Option("--since", help="with --stats: the period, such as 7d, 12h or 30m")] = "7d",
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """The newest runs: prompt, models, winner, cost, answer."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"config": config, "store": store}
        return
    if show_stats:
        from ..servers.core.errors import LLMMixerError
        from .logs import print_stats
        from .stats import parse_since

        try:
            bound = parse_since(since)
        except LLMMixerError as error:
            raise _fail_usage(error.message) from error
        raise typer.Exit(_run_async(print_stats(_log_store(config, store), bound, as_json=as_json)))
    from .logs import list_logs

    raise typer.Exit(_run_async(list_logs(_log_store(config, store), count=count, as_json=as_json, query=query,
                                          conversation_id=cid)))


@logs_app.command("show")
def logs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="the run id (llmmixer logs lists them)")],
    timeline: Annotated[bool, typer.Option("--timeline", help="each leg's start, first token and end")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the whole record as JSON")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """One run whole: prompt, system, options, every leg's answer and figures."""
    from .logs import show_log

    parent = ctx.obj or {}
    url = _log_store(config or parent.get("config"), store or parent.get("store"))
    raise typer.Exit(_run_async(show_log(url, run_id, timeline=timeline, as_json=as_json)))


def _log_store(config_path: str | None, store_url: str | None) -> str:
    from ..servers.core.errors import LLMMixerError
    from .config import load_config

    if store_url:
        return store_url
    try:
        configured = load_config(config_path).settings.store
    except LLMMixerError as error:
        raise _fail_usage(error.message) from error
    return configured or default_log_store()


@app.command()
def run(
    command: Annotated[str, typer.Argument(help="the shell command")],
    cwd: Annotated[str | None, typer.Option(help="working directory")] = None,
    timeout: Annotated[float | None, typer.Option(help="kill after this many seconds")] = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    standalone: StandaloneOpt = False,
) -> None:
    """Run a shell command through the PTY runner (its policy applies); the exit code passes through."""
    from .requests import CommandRequest

    request = _request(CommandRequest, command_fields(command=command, cwd=cwd, timeout=timeout))
    service = _service(config, store, standalone, start=True)
    if service is not None:
        import os

        # The service may run elsewhere: the directory is this one, spelled out.
        body = request.model_copy(update={"cwd": os.path.abspath(cwd or ".")}).model_dump(mode="json",
                                                                                          exclude_none=True)

        async def remote(runs: RemoteRuns, started: list[str]) -> int:
            run_id = await runs.start_command(body)
            started.append(run_id)
            return await _follow_command(runs, run_id)

        raise typer.Exit(_on_service(service, remote, config))
    raise typer.Exit(_run_async(_run_command(request, config, store)))


def command_fields(*, command: str, cwd: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """The :class:`~.requests.CommandRequest` fields ``run``'s options name."""
    return {"command": command, "cwd": cwd, "timeout_s": timeout}


# A request field's option where its name is not the field's (``--max-tokens`` is ``max_tokens``).
OPTION_FOR_FIELD = {"deadline_s": "--deadline", "conversation_id": "--cid", "response_schema": "--schema",
                    "images": "--image", "timeout_s": "--timeout", "prompt": "the prompt", "model_ids": "--model",
                    "continue_latest": "--continue", "max_cost_usd": "--max-cost", "task": "the task",
                    "command": "the command"}


def _request(model: type[R], fields: dict[str, Any]) -> R:
    """``fields`` as the request ``model``; a field it refuses is a usage error (exit 2) naming its option."""
    from ..servers.core.errors import LLMMixerError
    from .requests import validate_request

    try:
        return validate_request(model, fields)
    except LLMMixerError as error:
        problems = (error.details or {}).get("problems") or []
        named = [f"{_option(p['field'])}: {p['problem']}" for p in problems]
        raise _fail_usage("; ".join(named) or error.message) from error


def _option(field: str) -> str:
    name, _, rest = field.partition(".")
    option = OPTION_FOR_FIELD.get(name) or "--" + name.replace("_", "-")
    return f"{option} ({rest})" if rest else option


async def _run_command(request: CommandRequest, config: str | None, store: str | None) -> int:
    async with await _open_runs(config, store) as runs:
        run_id = await runs.start(request)
        return await _follow_command(runs, run_id)


async def _follow_command(runs: Runs | RemoteRuns, run_id: str) -> int:
    async for _source, text in runs.deltas(run_id):
        sys.stdout.write(text)
        sys.stdout.flush()
    final = await runs.snapshot(run_id)
    if final.get("error"):
        error = final["error"]
        typer.echo(f"\nerror: {error.get('kind')}: {error.get('message')}", err=True)
        return EXIT_FAILED
    if final.get("timed_out"):
        typer.echo("\n(timed out)", err=True)
    code = final.get("exit_code")
    return code if isinstance(code, int) and 0 <= code < 256 else EXIT_FAILED


@agent_app.command("run")
def agent(
    task: Annotated[str, typer.Argument(help="what the agents should do")],
    check: Annotated[str, typer.Option("--check", help="shell command run in each agent's worktree; exit 0 wins")],
    agents: Annotated[str | None, typer.Option("--agents", "-a", help="comma list (default: every agent CLI)")] = None,
    mode: Annotated[str, typer.Option(help=f"{' | '.join(AGENT_MODES)}")] = AGENT_MODES[0],
    cwd: Annotated[str | None, typer.Option(help="the git repository (default: this directory)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds each agent may run")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="apply the winner's diff to this tree")] = False,
    keep: Annotated[bool | None, typer.Option("--keep/--no-keep", help="keep every leg as a branch "
                                              "llmmixer/RUN/AGENT (default: in all mode)")] = None,
    setup: Annotated[str | None, typer.Option("--setup", help="shell command run in each worktree, in its sandbox, "
                                              "before the agent (e.g. npm ci)")] = None,
    pick: Annotated[str, typer.Option("--pick", help="first: the first to pass wins; best: a judge model ranks "
                                      "every passer")] = "first",
    grace: Annotated[float, typer.Option("--grace", help="--pick best in a race: seconds the others may still "
                                         "pass after the first")] = 60.0,
    judge: Annotated[str | None, typer.Option("--judge", help="--pick best: the judging model server "
                                              "(default: the first configured)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one final JSON object")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    standalone: StandaloneOpt = False,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="a gateway model for every agent (race/claude,gpt, an alias, a model id): each CLI "
                              "uses the mixer's own endpoint")] = None,
    base: Annotated[str, typer.Option("--base", help="head: the legs start from HEAD; worktree: from this tree "
                                      "with its uncommitted changes (a temporary commit no branch sees)")] = "head",
    max_cost: MaxCostOpt = None,
) -> None:
    """Race coding agents (Claude Code, Codex, Gemini CLI) on a task, each in its own git worktree."""
    if mode not in AGENT_MODES:
        raise _fail_usage(f"--mode must be one of {', '.join(AGENT_MODES)}")
    from .requests import AgentRequest

    request = _request(AgentRequest, agent_fields(task=task, check=check, agents=agents, mode=mode, cwd=cwd,
                                                  timeout=timeout, apply=apply, keep=keep, setup=setup,
                                                  pick=pick, grace=grace, judge=judge, model=model, base=base,
                                                  max_cost=max_cost))
    _run_agent_request(request, cwd, as_json, config, store, standalone)


@agent_app.command("continue")
def agent_continue(
    run_id: Annotated[str, typer.Argument(help="the agent run's id")],
    agent: Annotated[str, typer.Argument(help="the kept leg to continue")],
    follow_up: Annotated[str, typer.Argument(help="the next message to the agent")],
    check: Annotated[str, typer.Option("--check", help="shell command run in the worktree afterwards; exit 0 "
                                                       "passes (default: the agent's own success)")] = "",
    cwd: Annotated[str | None, typer.Option(help="the git repository (default: this directory)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds the agent may run")] = None,
    setup: Annotated[str | None, typer.Option("--setup", help="shell command run in the worktree, in its sandbox, "
                                              "before the agent")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one final JSON object")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    standalone: StandaloneOpt = False,
) -> None:
    """Resume a kept leg's own CLI session with a follow-up, in a fresh worktree of its branch and a fresh sandbox;
    the result is committed onto the same branch llmmixer/RUN/AGENT."""
    from .requests import AgentRequest

    request = _request(AgentRequest, continue_fields(run_id=run_id, agent=agent, follow_up=follow_up, check=check,
                                                     cwd=cwd, timeout=timeout, setup=setup))
    _run_agent_request(request, cwd, as_json, config, store, standalone)


def continue_fields(*, run_id: str, agent: str, follow_up: str, check: str = "", cwd: str | None = None,
                    timeout: float | None = None, setup: str | None = None) -> dict[str, Any]:
    """The :class:`~.requests.AgentRequest` fields ``agent continue``'s arguments and options name."""
    return {"task": follow_up, "check": check, "agents": [agent], "cwd": cwd, "timeout_s": timeout, "setup": setup,
            "continue_run": run_id}


def _run_agent_request(request: AgentRequest, cwd: str | None, as_json: bool, config: str | None,
                       store: str | None, standalone: bool) -> None:
    """Run ``request`` on the resident service when there is one, else in this process; exits with its outcome."""
    service = _service(config, store, standalone, start=True)
    if service is not None:
        import os

        body = request.model_copy(update={"cwd": os.path.abspath(cwd or ".")}).model_dump(mode="json",
                                                                                          exclude_none=True)

        async def remote(runs: RemoteRuns, started: list[str]) -> int:
            from .agents.view import follow_agent_events

            run_id = await runs.start_agents(body)
            started.append(run_id)
            await follow_agent_events(runs.events(run_id))
            return _report_agents(await runs.snapshot(run_id), as_json)

        raise typer.Exit(_on_service(service, remote, config))
    raise typer.Exit(_run_async(_agent(request, as_json, config, store)))


def agent_fields(*, task: str, check: str, agents: str | None = None, mode: str = AGENT_MODES[0],
                 cwd: str | None = None, timeout: float | None = None, apply: bool = False,
                 keep: bool | None = None, setup: str | None = None, pick: str = "first", grace: float = 60.0,
                 judge: str | None = None, model: str | None = None, base: str = "head",
                 max_cost: float | None = None) -> dict[str, Any]:
    """The :class:`~.requests.AgentRequest` fields ``agent``'s options name."""
    return {"task": task, "check": check, "agents": agents, "mode": mode, "cwd": cwd, "timeout_s": timeout,
            "apply": apply, "keep": keep, "setup": setup, "pick": pick, "grace_s": grace, "judge": judge,
            "model": model, "base": base, "max_cost_usd": max_cost}


async def _agent(request: AgentRequest, as_json: bool, config: str | None, store: str | None) -> int:
    import contextlib
    import secrets

    from .agents.view import follow_agents

    async with await _open_runs(config, store) as runs, contextlib.AsyncExitStack() as stack:
        if request.model is not None:
            # No resident service: this process serves the gateway on loopback for the agents' run.
            from .web.app import create_app, running

            await stack.enter_async_context(running(create_app(runs, runs.store,
                                                               token=secrets.token_urlsafe(24))))
        run_id = await runs.start(request)
        final = await follow_agents(runs, run_id)
    return _report_agents(final, as_json)


def _report_agents(final: dict[str, Any], as_json: bool) -> int:
    from .agents.view import summary

    if as_json:
        keys = ("mode", "winner", "diff", "applied", "kept", "pick", "verdict", "base", "cost_cap", "continued",
                "legs", "total_cost_usd", "duration_ms", "run_id", "status", "error")
        typer.echo(json.dumps({k: final[k] for k in keys if k in final}, ensure_ascii=False, indent=2))
    else:
        typer.echo(summary(final))
        if final.get("error"):
            typer.echo(f"error: {final['error'].get('kind')}: {final['error'].get('message')}", err=True)
    return EXIT_OK if final.get("winner") else EXIT_FAILED


@app.command()
def servers(config: ConfigOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False,
            standalone: StandaloneOpt = False) -> None:
    """Each server: transport, status, tools, last latency."""
    raise typer.Exit(_run_async(_servers(config, as_json, _service(config, None, standalone, start=False))))


async def _servers(config: str | None, as_json: bool, service: RuntimeInfo | None) -> int:
    if service is not None:
        from .remote import RemoteRuns

        async with RemoteRuns(service) as remote:
            statuses = await remote.servers()
    else:
        async with await _open_runs(config, "memory") as runs:
            statuses = await runs.servers()
    if as_json:
        typer.echo(json.dumps(statuses, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("server", "transport", "status", "key", "endpoint", "tools", "latency ms", "info", "error",
                      "cooling down until")
        for s in statuses:
            cooling = f"{s['cooling_until']} ({s['cooldown_reason']})" if s.get("cooling_until") else ""
            key = s.get("key_var") or ""
            if s.get("key_set") is False:
                key = f"{key} (not set)"
            table.add_row(s["name"], s["transport"], _server_state(s), key, s.get("endpoint") or "",
                          ", ".join(s["tools"]), "" if s["last_latency_ms"] is None else f"{s['last_latency_ms']:.1f}",
                          s.get("info") or "", s["last_error"] or "", cooling)
        Console().print(table)
    return EXIT_OK if all(_server_state(s) == "ready" for s in statuses) else EXIT_FAILED


def _server_state(status: dict[str, Any]) -> str:
    """A model server that started but has no key cannot answer: ``no key``, not ``ready``."""
    if status["status"] == "ready" and status.get("key_set") is False:
        return "no key"
    return str(status["status"])


@app.command()
def demo(
    prompt: Annotated[str, typer.Argument()] = "Say hello in three languages.",
    mode: Annotated[str, typer.Option(help=modes_help())] = DEFAULT_MODE,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    seed: Annotated[int | None, typer.Option(help="seed the emulators' jitter: the same seed, the same race")] = None,
) -> None:
    """Race Claude, GPT and Gemini against the bundled vendor emulators: no API key, no network.

    `llmmixer demo agents` races the installed coding CLIs on a scripted task instead."""
    if prompt == "agents":
        from .agents.demo import run_agents_demo

        raise typer.Exit(_run_async(run_agents_demo(as_json)))
    from .demo import run_demo

    raise typer.Exit(_run_async(run_demo(prompt, mode, as_json, seed)))


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def emulators(ctx: typer.Context) -> None:
    """Serve fake Anthropic, OpenAI and Gemini APIs here; print the export lines (dummy keys too). --help for flags."""
    from ..servers.emulators.__main__ import main as emulators_main

    raise typer.Exit(emulators_main(ctx.args))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="bind address (non-loopback needs LLMMIXER_TOKEN)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free one)")] = 8765,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="another Host name to answer to (repeatable; also LLMMIXER_ALLOWED_HOSTS)")] = None,
    status: Annotated[bool, typer.Option("--status", help="say whether a service runs for this config; exit 1 if "
                                                          "none")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="stop the service running for this config")] = False,
    idle_exit: Annotated[bool, typer.Option("--idle-exit", hidden=True,
                                            help="stop after settings.idle_exit_s with no client and no run")] = False,
    log: Annotated[str | None, typer.Option("--log", hidden=True, help="where this service logs (published)")
                   ] = None,
) -> None:
    """The resident service: HTTP API, SSE event stream and live dashboard; the CLI's commands run on it."""
    if status or stop:
        raise typer.Exit(_serve_control(config, stop=stop))
    from .serve import serve_web

    raise typer.Exit(serve_web(host=host, port=port, store_url=store, config_path=config,
                               allowed_hosts=allowed_host or (), idle_exit=idle_exit, log_path=log))


def _serve_control(config: str | None, *, stop: bool) -> int:
    from . import resident, runtime

    info = runtime.read(runtime.config_identity(config))
    if info is None:
        typer.echo("no resident service runs for this config")
        return EXIT_FAILED
    if not stop:
        typer.echo(f"running: {info.dashboard_url}\npid {info.pid}  config {info.config_path or '(built-in servers)'}"
                   f"  log {info.log or '(its terminal)'}")
        return EXIT_OK
    if resident.stop(info):
        typer.echo(f"stopped the service (pid {info.pid})")
        return EXIT_OK
    typer.echo(f"error: the service (pid {info.pid}) did not stop within {resident.STOP_TIMEOUT_S:.0f} s", err=True)
    return EXIT_FAILED


@app.command()
def dashboard(
    config: ConfigOpt = None,
    no_open: Annotated[bool, typer.Option("--no-open", help="print the address only")] = False,
) -> None:
    """Open the live dashboard of the resident service (started if none runs for this config)."""
    from .resident import connect

    info = connect(config, start=True)
    if info is None:
        typer.echo("error: no resident service (settings.resident is false, or it could not start); "
                   "run llmmixer serve", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(info.dashboard_url)
    if not no_open:
        import webbrowser

        webbrowser.open(info.dashboard_url)
    raise typer.Exit(EXIT_OK)


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def mcp(ctx: typer.Context) -> None:
    """The orchestrator itself as one MCP server (stdio, or --transport streamable-http). --help for flags."""
    from .mcp_server import main as mcp_main

    raise typer.Exit(mcp_main(ctx.args))


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def server(ctx: typer.Context) -> None:
    """One server on its own, as its own command runs it: llmmixer server NAME [FLAGS] (claude, gpt, gemini, pty or
    a plugin's; stdio, or --transport streamable-http). NAME --help for its flags."""
    import runpy

    from ..servers.core.manifest import load_manifests

    known = {manifest.name: manifest for manifest in load_manifests()}
    if ctx.args[:1] in (["--help"], ["-h"]):
        typer.echo(f"usage: llmmixer server NAME [FLAGS]\n\nRun one server on its own, exactly as its own command "
                   f"does (llmmixer server gpt is llmmixer-gpt).\nNAME: {', '.join(known)}. "
                   f"llmmixer server NAME --help lists its flags.")
        return
    if not ctx.args or ctx.args[0] not in known:
        given = f"unknown server {ctx.args[0]!r}; " if ctx.args and not ctx.args[0].startswith("-") else ""
        raise _fail_usage(f"{given}usage: llmmixer server NAME [FLAGS], NAME one of {', '.join(known)}")
    manifest = known[ctx.args[0]]
    sys.argv = [manifest.script or f"llmmixer server {manifest.name}", *ctx.args[1:]]
    runpy.run_module(manifest.module, run_name="__main__", alter_sys=True)


@config_app.command("claude-desktop", context_settings=PASSTHROUGH, add_help_option=False)
def claude_desktop(ctx: typer.Context) -> None:
    """Print (or --write) the mcpServers entries for Claude Desktop; --format claude-code. --help for flags."""
    from .desktop_config import main as config_main

    raise typer.Exit(config_main(ctx.args))


@config_app.command("trust")
def config_trust(directory: Annotated[str, typer.Argument(help="the directory (default: this one)")] = ".") -> None:
    """Read DIRECTORY's llmmixer.json without --config from now on (only trust a directory no sandboxed command
    writes to)."""
    import os

    from .config_paths import trust_dir

    try:
        path = trust_dir(directory)
    except OSError as error:
        typer.echo(f"llmmixer: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"trusted {os.path.realpath(directory)} (in {path})")


def _host_config_command(host: str, title: str) -> None:
    def command(ctx: typer.Context) -> None:
        from .host_config import main as host_main

        raise typer.Exit(host_main(host, ctx.args))

    command.__doc__ = f"Print (or --write, merged safely) {title}'s MCP config for LLMMixer. --help for flags."
    config_app.command(host, context_settings=PASSTHROUGH, add_help_option=False)(command)


for _host, _title in (("claude-code", "Claude Code"), ("codex", "Codex"), ("gemini-cli", "Gemini CLI"),
                      ("cursor", "Cursor"), ("vscode", "VS Code")):
    _host_config_command(_host, _title)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
