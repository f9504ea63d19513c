"""The PTY runner's command policy through real MCP (in-memory ``mcp.Client(server)``): issue 4's bypass list as a
table, the policy file protecting itself, typed lines in interactive shells, and ``ask`` through elicitation."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitResult

from llmmixer.servers.core.errors import InvalidInputError
from llmmixer.servers.core.results import result_payload
from llmmixer.servers.pty_runner.policy import PARSE_RULE, PROTECT_RULE, UNRESOLVED_RULE, Policy
from llmmixer.servers.pty_runner.runner import PtyRunner
from llmmixer.servers.pty_runner.server import build_pty_server

pytestmark = pytest.mark.anyio

BACKENDS = ["pty", "pipe"]
# The suite runs with the sandbox as the environment asks (read at import, before the autouse fixture clears every
# LLMMIXER_* variable): `LLMMIXER_PTY_SANDBOX=off pytest tests/test_pty_*.py` runs it unsandboxed.
SANDBOX = os.environ.get("LLMMIXER_PTY_SANDBOX", "auto")

POLICY_TOML = """
[policy]
default = "allow"
deny  = ["rm", "shutdown", "git push --force"]
ask   = ["git push", "touch"]
allow = ["git push --dry-run"]
"""

# Issue 4: each of these is refused, with kind `policy`, when `rm` is denied.
BYPASSES = [
    "rm -rf /tmp/x",
    "/bin/rm x",
    "\\rm x",
    "r''m x",
    "echo ok; rm x",
    "true && rm x",
    "(rm x)",
    "$(rm x)",
    "`rm x`",
    "sh -c 'rm x'",
    'bash -c "rm x"',
    "env rm x",
    "xargs rm < list",
    "find . -exec rm {} \\;",
    "eval 'rm x'",
    # ... and more of the same family.
    'r"m" x',
    "/usr/bin/../bin/rm x",
    "echo ok | rm x",
    "false || rm x",
    "{ rm x; }",
    "if true; then rm x; fi",
    "for f in x; do rm $f; done",
    "f() { rm x; }; f",
    'echo "$(rm x)"',
    "echo $(echo $(rm x))",
    "cat <(rm x)",
    "v=$(rm x) true",
    "rm x &",
    "sudo rm x",
    "sudo -u root -E rm x",
    "env -i FOO=1 rm x",
    "env -S 'rm x'",
    "nice -n 5 rm x",
    "timeout 5 rm x",
    "timeout -s KILL 5 nohup rm x",
    "nohup rm x",
    "command rm x",
    "exec rm x",
    "stdbuf -o0 rm x",
    "xargs -I{} rm {} < list",
    "find . -name x -execdir rm {} +",
    "sh -ec 'rm x'",
    "bash -o pipefail -c 'rm x'",
    "sh -c \"sh -c 'rm x'\"",
    "eval \"bash -c 'rm x'\"",
    "bash <<< 'rm x'",
    "watch -n 1 rm x",
    "alias r=rm",
    "trap 'rm x' EXIT",
    "su -c 'rm x'",
    "busybox rm x",
]

# Statically unresolvable: denied because a deny rule exists.
UNRESOLVABLE = [
    "X=rm; $X x",
    "${X} x",
    '"$X" x',
    "$(echo rm) x",
    "`echo rm` x",
    "cat list | sh",
    "cat list | bash -s",
    "sh < <(cat list)",
    "echo x | xargs sh -c",
    "eval $CMD",
    "sh -c \"$CMD\"",
    "{r,}m x",
    "/bin/r? x",
    "echo ${X:-$(rm x)}",
    "strace -f rm x",
    "fc -s",
]


def write_policy(directory: Path, text: str = POLICY_TOML) -> Path:
    path = directory / "policy.toml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def connect(backend: str, policy: Policy, cwd: Path, **client_kwargs: Any) -> AsyncIterator[Client]:
    server = build_pty_server(PtyRunner(backend=backend, cwd=str(cwd), sandbox=SANDBOX),  # type: ignore[arg-type]
                              policy)
    async with Client(server, **client_kwargs) as client:
        yield client


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.is_error, (args, result.structured_content)
    assert result.structured_content is None  # errors travel as text only
    error = result_payload(result)["error"]
    assert error["kind"] == "policy", error
    return error


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding a file ``x`` a refused ``rm`` would delete, and a ``list`` naming it."""
    (tmp_path / "x").write_text("precious")
    (tmp_path / "list").write_text("x\n")
    return tmp_path


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_bypass_is_refused_by_the_rm_rule(backend: str, workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    async with connect(backend, policy, workdir) as client:
        for command in BYPASSES:
            error = await refused(client, "run", command=command)
            assert error["details"]["rule"] == "deny: rm", (command, error)
            assert "deny: rm" in error["message"]
            assert (workdir / "x").read_text() == "precious", command
        assert (await call(client, "run", command="echo ok; ls"))["output"].split() == ["ok", "list", "policy.toml",
                                                                                        "x"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_commands_fed_to_a_shell_on_stdin_are_checked(backend: str, workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    async with connect(backend, policy, workdir) as client:
        for command in ("bash", "sh -s", "sudo -s"):
            error = await refused(client, "run", command=command, stdin="echo hi\nrm x\n")
            assert error["details"]["rule"] == "deny: rm", command
        body = await call(client, "run", command="sh -s", stdin="echo fed\n")
        assert "fed" in body["output"].split()  # on a terminal sh is interactive and prompts too
    assert (workdir / "x").exists()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_unresolvable_commands_are_denied_when_a_deny_rule_exists(backend: str, workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    async with connect(backend, policy, workdir) as client:
        for command in UNRESOLVABLE:
            error = await refused(client, "run", command=command)
            assert error["details"]["rule"] in (UNRESOLVED_RULE, "deny: rm"), (command, error)
        assert (workdir / "x").exists()
    # Without deny rules there is nothing to protect: the same command line runs.
    open_policy = Policy.from_dict({"policy": {"allow": ["echo"]}})
    async with connect(backend, open_policy, workdir) as client:
        body = await call(client, "run", command="X=echo; $X resolved at run time")
        assert body["output"].strip() == "resolved at run time"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_line_the_parser_cannot_read_is_denied_only_when_deny_rules_exist(backend: str,
                                                                                   workdir: Path) -> None:
    command = "case a in a) echo matched;; esac"
    async with connect(backend, Policy.load(write_policy(workdir)), workdir) as client:
        error = await refused(client, "run", command=command)
        assert error["details"]["rule"] == PARSE_RULE and "parser" in error["message"]
    async with connect(backend, Policy.from_dict({"policy": {"ask": ["git push"]}}), workdir) as client:
        result = await client.call_tool("run", {"command": command})
        assert result.is_error and result_payload(result)["error"]["kind"] == "policy"  # asked; cannot ask
    async with connect(backend, Policy.from_dict({"policy": {"allow": ["echo"]}}), workdir) as client:
        assert (await call(client, "run", command=command))["output"].strip() == "matched"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_policy_file_is_read_only_to_commands(backend: str, workdir: Path) -> None:
    path = write_policy(workdir)
    policy = Policy.load(path)
    attempts = [
        "echo 'deny = []' > policy.toml",
        f"echo 'default = \"allow\"' >> {path}",
        "sed -i 's/rm/xx/' policy.toml",
        "echo x | tee policy.toml",
        "cp /dev/null policy.toml",
        "mv policy.toml elsewhere.toml",
        "truncate -s 0 policy.toml",
        "dd if=/dev/null of=policy.toml",
        "python3 -c 'open(\"x\")' > ./policy.toml",
        f"chmod 777 {workdir}",
        "cd /tmp && cat > policy.toml",
        "bash -c 'echo > policy.toml'",
        "ln -sf /dev/null policy.toml",
        "unlink policy.toml",
    ]
    async with connect(backend, policy, workdir) as client:
        for command in attempts:
            error = await refused(client, "run", command=command)
            assert error["details"]["rule"] in (PROTECT_RULE, "deny: rm"), (command, error)
        assert path.read_text() == POLICY_TOML
        assert "deny" in (await call(client, "run", command="cat policy.toml"))["output"]
        assert (await call(client, "run", command="cp policy.toml backup.toml"))["exit_code"] == 0
        assert (workdir / "backup.toml").read_text() == POLICY_TOML


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rm_typed_into_an_interactive_bash_is_refused(backend: str, workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    async with connect(backend, policy, workdir) as client:
        sid = (await call(client, "start", command="bash --norc --noprofile"))["session_id"]
        await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        error = await refused(client, "send", session_id=sid, text="rm x\n")
        assert error["details"]["rule"] == "deny: rm"
        # Typed in pieces: the line is checked when it ends.
        await call(client, "send", session_id=sid, text="rm ")
        await call(client, "send", session_id=sid, text="x")
        assert (await refused(client, "send", session_id=sid, keys=["enter"]))["details"]["rule"] == "deny: rm"
        # Keys whose effect on the line cannot be followed (completion, history, cursor motion) are refused.
        await refused(client, "send", session_id=sid, text="m x", keys=["left", "left", "left"])
        await refused(client, "send", session_id=sid, text="!!", keys=["enter"])
        await refused(client, "send", session_id=sid, text="echo ok; sh -c 'rm x'\n")
        # The refused text never reached the shell: the next line runs alone.
        await call(client, "send", session_id=sid, text="expr 40 + 2 | sed 's/^/still-/'", keys=["enter"])
        body = await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert "still-42" in body["output"]
        await call(client, "send", session_id=sid, text="exit\n")
        done = await call(client, "wait", session_id=sid, until="exit", timeout_s=20)
        assert done["exited"] is True
        assert (workdir / "x").read_text() == "precious"


async def test_a_repl_session_is_not_parsed_as_shell(workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    async with connect("pty", policy, workdir) as client:
        sid = (await call(client, "start", command="python3 -q"))["session_id"]
        await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        await call(client, "send", session_id=sid, text="print(len('a b c'.split()))\n")
        body = await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        assert "3" in body["output"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_ask_rules_use_elicitation(mode: str, workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    questions: list[str] = []

    def answering(action: str, approve: bool = True) -> Any:
        async def callback(context: Any, params: Any) -> ElicitResult:
            questions.append(params.message)
            return ElicitResult(action=action, content={"approve": approve} if action == "accept" else None)
        return callback

    async with connect("pipe", policy, workdir, mode=mode, elicitation_callback=answering("accept")) as client:
        body = await call(client, "run", command="touch approved && echo made")
        assert body["output"].strip() == "made" and (workdir / "approved").exists()
        assert "touch approved" in questions[-1] and "ask: touch" in questions[-1]
    async with connect("pipe", policy, workdir, mode=mode,
                       elicitation_callback=answering("accept", approve=False)) as client:
        error = await refused(client, "run", command="touch not-approved")
        assert "not approved" in error["message"]
    async with connect("pipe", policy, workdir, mode=mode, elicitation_callback=answering("decline")) as client:
        error = await refused(client, "run", command="touch declined")
        assert "declined" in error["message"] and error["details"]["rule"] == "ask: touch"
    async with connect("pipe", policy, workdir, mode=mode) as client:  # no callback: no elicitation capability
        error = await refused(client, "run", command="touch unasked")
        assert "elicitation" in error["message"]
    assert not any((workdir / name).exists() for name in ("not-approved", "declined", "unasked"))


async def test_ask_applies_to_start_and_send_too(workdir: Path) -> None:
    policy = Policy.load(write_policy(workdir))
    async with connect("pty", policy, workdir) as client:
        await refused(client, "start", command="touch started")
        sid = (await call(client, "start", command="bash --norc --noprofile"))["session_id"]
        await call(client, "wait", session_id=sid, until="input", timeout_s=20)
        await refused(client, "send", session_id=sid, text="touch typed\n")
    assert not (workdir / "started").exists() and not (workdir / "typed").exists()


def test_most_specific_rule_wins() -> None:
    policy = Policy.from_dict({"policy": {"deny": ["git push --force"], "ask": ["git push"],
                                          "allow": ["git push --dry-run"]}})
    assert policy.check("git push --dry-run origin").action == "allow"
    assert policy.check("git push origin main").action == "ask"
    assert policy.check("git push --force").action == "deny"
    assert policy.check("git status").action == "allow"
    assert policy.check("git push $(echo --force)").action == "deny"  # unknown argument: assume the worst
    assert policy.check("git push --dry-run; git push --force").rule == "deny: git push --force"
    strict = Policy.from_dict({"policy": {"default": "deny", "allow": ["ls", "echo"]}})
    assert strict.check("ls -la | echo").action == "allow"
    assert strict.check("ls; cat /etc/passwd").rule is None and strict.check("cat x").action == "deny"


def test_policy_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        Policy.load(write_policy(tmp_path, "[policy\n"))
    with pytest.raises(InvalidInputError, match="list of strings"):
        Policy.load(write_policy(tmp_path, "[policy]\ndeny = 'rm'\n"))
    with pytest.raises(InvalidInputError, match="default must be"):
        Policy.load(write_policy(tmp_path, "[policy]\ndefault = 'maybe'\n"))
    with pytest.raises(InvalidInputError, match="cannot read"):
        Policy.load(tmp_path / "missing.toml")
