"""Issue 11's bypass suite: the sandbox and the exec-time guards, judged by side effects on disk.

Each case runs through the runner's public API **without** the parse-time check (``PtyRunner.run``/``start``/``send``
directly), so what holds is the sandbox's doing, not bashlex's: a canary file a refused ``rm`` would delete is still
there, a marker a denied program would create never exists, the policy file keeps its hash and inode, a file outside
``writable`` is unchanged, a push never lands in the remote. A few cases go through real MCP to pin the error shape.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client

from llmmixer.servers.core.results import result_payload
from llmmixer.servers.pty_runner.policy import Policy
from llmmixer.servers.pty_runner.runner import PtyRunner
from llmmixer.servers.pty_runner.sandbox import probe
from llmmixer.servers.pty_runner.server import build_pty_server

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(probe() is not None, reason=f"no working bubblewrap: {probe()}")]

POLICY = """
[policy]
default = "allow"
deny = ["rm", "curl", "python", "shred"]
ask = ["git push"]

[sandbox]
mode = "on"
writable = ["."]
network = "allow"
"""


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_ino


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """cwd ``work/`` with the canary ``x`` and a policy file in ``work/conf/``."""
    work = tmp_path / "work"
    (work / "conf").mkdir(parents=True)
    (work / "x").write_text("precious")
    (work / "conf" / "policy.toml").write_text(POLICY)
    yield work


@pytest.fixture
def outside() -> Iterator[Path]:
    """A file outside every writable path, and not under /tmp (which the sandbox replaces by a private one)."""
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="sandbox-outside-", dir="/var/tmp"))
    (directory / "keep.txt").write_text("keep me")
    yield directory / "keep.txt"
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def runner_for(work: Path, policy_text: str | None = None, backend: str = "pty", **kwargs: Any) -> PtyRunner:
    path = work / "conf" / "policy.toml"
    if policy_text is not None:
        path.write_text(policy_text)
    runner = PtyRunner(backend=backend, cwd=str(work), sandbox="on", **kwargs)  # type: ignore[arg-type]
    runner.containment.use_policy(Policy.load(path))
    return runner


# -- a denied program never runs, however it is reached ---------------------------------------------------------

RM_BYPASSES = [
    # script files and stdin
    "echo 'rm x' > s.sh; bash s.sh",
    "echo 'rm x' > s.sh; sh < s.sh",
    "source <(echo rm x)",
    ". /dev/stdin <<< 'rm x'",
    # a renamed or copied binary
    "ln -s /bin/rm r; ./r x",
    "cp /bin/rm zz && ./zz x",
    "cat /usr/bin/rm > q; chmod +x q; ./q x",
    "hash -p /bin/rm ls; ls x",
    "/usr/bin/rm x",
    "/proc/self/root/usr/bin/rm x",
    "exec -a ls /bin/rm x",
    # shell hooks
    "trap -- 'rm x' EXIT",
    "echo 'rm x' > e.sh; BASH_ENV=./e.sh bash -c true",
    "PROMPT_COMMAND='rm x' bash --norc -i <<< 'true'",
    # wrappers read wrongly
    "env -vS 'rm x'",
    "env --split-string='rm x'",
    "X=rm; $X x",
    # programs that run programs
    "perl -e 'system(\"rm\", \"x\")'",
    "awk 'BEGIN{system(\"rm x\")}'",
    "echo a > f; sed -n '1e rm x' f",
    "echo a > f; tar -cf t.tar --checkpoint=1 --checkpoint-action=exec='rm x' f",
    "git -c alias.z='!rm x' z",
    "vim -es -u NONE -c '!rm x' -c 'qa!'",
    "find . -maxdepth 0 -exec rm x \\;",
    "echo x | xargs rm",
    "node -e 'require(\"child_process\").execSync(\"rm x\")'",
    "make -f /dev/stdin <<< $'all:\\n\\trm x'",
]


COPIES = ("cp /bin/rm zz && ./zz x", "cat /usr/bin/rm > q; chmod +x q; ./q x")


@pytest.mark.parametrize("backend", ["pty", "pipe"])
async def test_a_denied_program_never_runs_however_it_is_reached(work: Path, backend: str) -> None:
    runner = runner_for(work, backend=backend)
    for command in RM_BYPASSES:
        result = await runner.run(command, timeout_s=30)
        assert (work / "x").read_text() == "precious", (command, result.output)
        assert result.sandbox == "bubblewrap"
        if command in COPIES:  # the guard is exec-only: there is nothing to copy (issue 21)
            assert "Permission denied" in result.output, (command, result.output)
            continue
        assert result.refused and result.refused[0]["rule"] == "deny: rm", (command, result.output)
        assert "llmmixer: rm refused by policy rule deny: rm" in result.output, (command, result.output)


async def test_families_and_other_denied_programs(work: Path) -> None:
    runner = runner_for(work)
    attempts = {
        "m-python": "python -c \"open('m-python', 'w')\"",
        "m-python3": "python3 -c \"open('m-python3', 'w')\"",
        "m-python311": "python3.11 -c \"open('m-python311', 'w')\"",
        "m-usr": "/usr/bin/python3 -c \"open('m-usr', 'w')\"",
        "m-exe": f"{os.path.realpath(sys.executable)} -c \"open('m-exe', 'w')\"",
        "m-curl": "curl -s -o m-curl file:///etc/hostname",
        "m-env": "env python3 -c \"open('m-env', 'w')\"",
    }
    for marker, command in attempts.items():
        result = await runner.run(command)
        assert not (work / marker).exists(), (command, result.output)
        assert result.refused, command
    assert (await runner.run("shred -u x")).refused and (work / "x").read_text() == "precious"


# -- files outside `writable`, and the policy file ---------------------------------------------------------------

OPEN_POLICY = POLICY.replace('deny = ["rm", "curl", "python", "shred"]', 'deny = ["shutdown"]')


async def test_a_file_outside_writable_is_unchanged_whatever_program_tries(work: Path, outside: Path) -> None:
    keep = outside
    before = digest(keep)
    runner = runner_for(work, OPEN_POLICY)
    assert (await runner.run(f"cat {keep}")).output.strip() == "keep me"  # visible, read-only
    for command in [
        f"rm -f {keep}",
        f"echo changed > {keep}",
        f"perl -e 'unlink \"{keep}\"'",
        f"node -e 'require(\"fs\").writeFileSync(\"{keep}\", \"changed\")'",
        f"python3 -c 'import os; os.remove(\"{keep}\")'",
        f"find {keep.parent} -name keep.txt -delete",
        f"mv {keep} {work}/stolen.txt",
        f"ln -f {work}/x {keep}",
        f"mv {keep.parent} {work}/moved",
        "cd /; rm -rf --no-preserve-root " + str(keep.parent),
    ]:
        result = await runner.run(command)
        assert keep.exists() and digest(keep) == before, (command, result.output)
    assert (work / "x").exists()  # the working directory itself stays writable:
    assert (await runner.run("echo new > made.txt && cat made.txt")).output.strip() == "new"


async def test_the_policy_file_is_unchanged_and_unmoved(work: Path) -> None:
    policy = work / "conf" / "policy.toml"
    before = digest(policy)
    runner = runner_for(work, OPEN_POLICY)
    before = digest(policy)
    for command in [
        "echo 'deny = []' > conf/policy.toml",
        "node -e 'require(\"fs\").writeFileSync(\"conf/pol\" + \"icy.toml\", \"\")'",
        "python3 -c 'import os; os.rename(\"conf/pol\" + \"icy.toml\", \"gone.toml\")'",
        "cat /dev/null > $(echo Y29uZi9wb2xpY3kudG9tbA== | base64 -d)",
        "cd conf && mv ../conf ../moved",
        "mv conf conf2",
        "find . -name policy.toml -exec ln {} hard.toml \\; ; echo x > hard.toml",
        "find . -name policy.toml -exec ln -sf /dev/null {} \\;",
        "find . -name policy.toml -exec rm -f {} \\;",
        "perl -e 'truncate(\"conf/policy.toml\", 0)'",
        "sed -i 's/shutdown/nothing/' conf/policy.toml",
    ]:
        result = await runner.run(command)
        assert policy.exists() and digest(policy) == before, (command, result.output)
    assert not (work / "moved").exists() and not (work / "conf2").exists() and not (work / "gone.toml").exists()


# -- ask rules under every git spelling ---------------------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(work: Path) -> Path:
    git("init", "-q", "--bare", "-b", "main", "remote.git", cwd=work)
    git("init", "-q", "-b", "main", "repo", cwd=work)
    (work / "repo" / "a.txt").write_text("a")
    git("add", "a.txt", cwd=work / "repo")
    git("commit", "-qm", "first", cwd=work / "repo")
    git("remote", "add", "origin", "../remote.git", cwd=work / "repo")
    return work / "repo"


def pushed(work: Path) -> bool:
    return bool(subprocess.run(["git", "--git-dir", str(work / "remote.git"), "show-ref"], capture_output=True,
                               text=True).stdout.strip())


GIT_PUSHES = [
    "git push origin main",
    "git -C . push origin main",
    "git --no-pager push origin main",
    "git -p push origin main",
    "git -c k.v=1 push origin main",
    "git -c alias.p=push p origin main",
    "git config alias.p push && git p origin main",
    "git config alias.q '-c x.y=1 push' && git q origin main",
    "git --git-dir=.git push origin main",
    "git --git-dir .git --work-tree . push origin main",
    "git send-pack ../remote.git main",
    "/usr/lib/git-core/git-push origin main",
    "cd .. && git -C repo push origin main",
    "cd /tmp && git --git-dir=$OLDPWD/.git push origin main",
    "cp /usr/bin/git g && ./g push origin main",
]


async def test_ask_rules_hold_under_every_git_spelling(work: Path, repo: Path) -> None:
    runner = runner_for(work)
    for command in GIT_PUSHES:
        result = await runner.run(f"cd repo && {command}")  # cwd: work/, which holds remote.git too
        assert not pushed(work), (command, result.output)
        if command.startswith("cp "):  # the guard is exec-only: there is nothing to copy (issue 21)
            assert "Permission denied" in result.output, (command, result.output)
            continue
        assert result.refused, (command, result.output)
        assert "llmmixer:" in result.output, (command, result.output)
    # Harmless git keeps working through the same guard.
    status = await runner.run("cd repo && git status --short && git log --oneline | wc -l && "
                              "git -c alias.s=status s")
    assert status.exit_code == 0 and not status.refused, status.output
    # Approved (the host said yes to `ask: git push` before the command started): the push lands.
    approved = await runner.run("cd repo && git -c alias.p=push p origin main", approvals=("ask: git push",))
    assert approved.exit_code == 0 and not approved.refused, approved.output
    assert pushed(work)


async def test_ask_through_mcp_elicitation_lets_the_push_run(work: Path, repo: Path) -> None:
    from mcp_types import ElicitResult

    asked: list[str] = []

    async def approve(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    runner = PtyRunner(backend="pipe", cwd=str(work), sandbox="on")
    async with Client(build_pty_server(runner, Policy.load(work / "conf" / "policy.toml")),
                      elicitation_callback=approve) as client:
        hidden = await client.call_tool("run", {"command": "cd repo && git -c alias.p=push p origin main"})
        assert hidden.is_error and hidden.structured_content is None  # errors travel as text only
        error = result_payload(hidden)["error"]
        assert error["kind"] == "policy" and error["details"]["rule"] == "ask: git push", error
        assert not pushed(work) and not asked  # hidden from the parser: refused at exec time, nobody asked
        plain = await client.call_tool("run", {"command": "cd repo && git push origin main"})
        assert not plain.is_error, plain.structured_content
        assert asked and "git push" in asked[0]
    assert pushed(work)


# -- interactive input: typed lines, REPLs and auto_respond are contained -----------------------------------------


async def wait_for(runner: PtyRunner, session: Any, text: str, timeout: float = 20) -> str:
    with anyio.fail_after(timeout):
        while text not in (out := session.buffer.since(0, final=True).data.decode(errors="replace")):
            await session.changed().wait()
    return out


async def test_interactive_tricks_repls_and_auto_respond_are_contained(work: Path) -> None:
    runner = runner_for(work, POLICY.replace('"python", ', ""))
    async with runner.running():
        shell = await runner.start("bash --norc --noprofile -i")
        await runner.wait(shell, until="input", timeout_s=20)
        for line in ["bind -x '\"\\C-t\": rm x'", "stty erase q"]:
            await runner.send(shell, runner.plan_send(shell, line + "\r", None), hold_partial_lines=False)
        await runner.send(shell, runner.plan_send(shell, "\x14", None), hold_partial_lines=False)  # ctrl-t
        await runner.send(shell, runner.plan_send(shell, "echo done-$((6*7))\r", None), hold_partial_lines=False)
        await wait_for(runner, shell, "done-42")
        assert (work / "x").exists()
        with anyio.fail_after(10):  # the guard's report travels on its own socket: it may trail the output
            while not any(e.type == "pty.refused" and e.data["program"] == "rm" for e in shell.events):
                await shell.changed().wait()
        # REPLs: lines are never parsed; the guards still hold.
        for command, line, ready in [
            ("python3 -q", "import os; os.system('rm x'); print('py-' + 'done')", "py-done"),
            ("node -i", "require('child_process').spawnSync('rm', ['x']); console.log('js-' + 'done')", "js-done"),
            ("tclsh", "catch {exec rm x}; puts tcl-[string cat do ne]", "tcl-done"),
        ]:
            repl = await runner.start(command)
            await runner.wait(repl, until="input", timeout_s=20)
            await runner.send(repl, runner.plan_send(repl, line + "\r", None), hold_partial_lines=False)
            await wait_for(runner, repl, ready)
            assert (work / "x").exists(), command
        answered = await runner.start("bash --norc --noprofile -i",
                                      auto_respond=[{"pattern": r"[$#] $", "send": "rm x; echo auto-$((1+1))\r"}])
        await wait_for(runner, answered, "auto-2")
        assert (work / "x").read_text() == "precious"


# -- secrets ------------------------------------------------------------------------------------------------------

CANARY = "sk-canary-7f3a9c2e5b1d4068"


async def test_the_canary_key_never_leaves_the_runner(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp import StdioServerParameters

    monkeypatch.setenv("CANARY_API_KEY", CANARY)  # the parent's (this process's) environment
    leaks = ("env; cat /proc/$PPID/environ /proc/1/environ; for p in /proc/[0-9]*; do tr '\\0' '\\n' "
             "< $p/environ; done; ps eww -e; cat /proc/self/environ")
    for mode in ("on", "off"):
        texts: list[str] = []

        async def progress(_p: float, _t: float | None, message: str | None) -> None:
            texts.append(message or "")

        params = StdioServerParameters(command=sys.executable, args=[
            "-m", "llmmixer.servers.pty_runner", "--sandbox", mode, "--cwd", str(work), "--policy",
            str(work / "conf" / "policy.toml")], env={**os.environ, "CANARY_API_KEY": CANARY,
                                                      "OTHER_TOKEN": CANARY + "x"})
        async with Client(params) as client:
            for tool, args in [("run", {"command": leaks}), ("run", {"command": f"echo {CANARY}"}),
                               ("run", {"command": f"FOO={CANARY} rm x"}), ("start", {"command": leaks}),
                               ("start", {"command": f"FOO={CANARY} sleep 2"}), ("list_sessions", {})]:
                result = await client.call_tool(tool, args, progress_callback=progress)
                texts.append(str(result.structured_content) + str(result.content))
                if tool == "start" and not result.is_error and "sleep" not in args["command"]:
                    sid = result.structured_content["session_id"]  # type: ignore[index]
                    done = await client.call_tool("wait", {"session_id": sid, "until": "exit", "timeout_s": 20})
                    texts.append(str(done.structured_content))
        joined = "\n".join(texts)
        assert CANARY not in joined, mode
        assert "[redacted:" in joined or mode == "on", mode
        assert (work / "x").exists()


async def test_secrets_are_injected_and_redacted_across_chunks(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("file-secret-1234567890abc\n")
    monkeypatch.setenv("SOURCE_OF_KEY", "env-secret-abcdef0123456789")
    runner = runner_for(work, POLICY + f'\n[secrets]\nAPI_TOKEN = "env:SOURCE_OF_KEY"\nFILE_TOKEN = '
                                       f'"file:{secret_file}"\n')
    chunks: list[str] = []

    async def on_output(text: str) -> None:
        chunks.append(text)

    result = await runner.run("test -n \"$API_TOKEN\" && echo has-$FILE_TOKEN; printf '%s' \"${API_TOKEN:0:10}\"; "
                              "sleep 0.3; printf '%s\\n' \"${API_TOKEN:10}\"; printenv CALL_SECRET",
                              on_output=on_output, secrets={"CALL_SECRET": "call-secret-zz9876543210"})
    streamed = "".join(chunks)
    for value in ("env-secret-abcdef0123456789", "file-secret-1234567890abc", "call-secret-zz9876543210"):
        assert value not in result.output and value not in streamed
    assert "has-[redacted:FILE_TOKEN]" in result.output
    assert "[redacted:API_TOKEN]" in result.output and "[redacted:API_TOKEN]" in streamed
    assert "[redacted:CALL_SECRET]" in result.output


def test_inline_secrets_are_redacted_from_command_text() -> None:
    from llmmixer.servers.core.redact import redact_inline

    assert redact_inline("FOO=sk-abcdef1234567890 curl x") == "FOO=[redacted] curl x"
    assert redact_inline("GITHUB_PAT=ghp_xyzxyzxyz123 git push; X=1 ls") == "GITHUB_PAT=[redacted] git push; X=1 ls"
    assert redact_inline("cd /tmp && make PREFIX=/usr/local") == "cd /tmp && make PREFIX=/usr/local"


# -- network, kill, harmless work ---------------------------------------------------------------------------------


@contextlib.contextmanager
def listener() -> Iterator[tuple[int, list[socket.socket]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    try:
        yield server.getsockname()[1], accepted
    finally:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])
        for conn in accepted:
            conn.close()
        server.close()


async def test_network_deny_cuts_loopback_and_allow_reaches_it(work: Path) -> None:
    for network, reachable in (("deny", False), ("allow", True)):
        runner = runner_for(work, POLICY.replace('network = "allow"', f'network = "{network}"'))
        with listener() as (port, accepted):
            result = await runner.run(f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected")
            await anyio.sleep(0.2)
        assert ("connected" in result.output) is reachable, (network, result.output)
        assert bool(accepted) is reachable, network


async def test_killing_a_session_ends_its_whole_pid_namespace(work: Path) -> None:
    runner = runner_for(work)
    async with runner.running():
        session = await runner.start("setsid -f sleep 301; (trap '' TERM HUP; exec -a holdout sleep 302) & "
                                     "sleep 303")
        with anyio.fail_after(20):
            while not any("301" in " ".join(p.cmdline()) for p in psutil.process_iter() if p.name() == "sleep"):
                await anyio.sleep(0.05)
        await runner.kill(session, "TERM", grace_s=1)
        assert session.exited
        with anyio.fail_after(10):
            while left := [p for p in psutil.process_iter(["name", "cmdline"])
                           if p.info["name"] in ("sleep", "holdout") and
                           any(a in ("301", "302", "303") for a in p.info["cmdline"] or ())]:
                await anyio.sleep(0.05)
        assert not left


async def test_harmless_work_is_not_over_refused(work: Path) -> None:
    (work / "Makefile").write_text("all:\n\t@echo made-it\n")
    (work / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    (work / "package.json").write_text('{"name": "t", "version": "1.0.0", "scripts": {"test": "node -e '
                                       '\\"console.log(\'npm-ok\')\\""}}')
    git("init", "-q", cwd=work)
    runner = runner_for(work, OPEN_POLICY)
    checks = {
        "git status --short | head -3; echo git-ok": "git-ok",
        "ls -la | head -3; echo ls-ok": "ls-ok",
        "make": "made-it",
        f"{sys.executable} -m pytest -q -p no:cacheprovider test_ok.py": "1 passed",
        "npm test --silent": "npm-ok",
        "seq 1 1000000 | head -1; echo pipe-$?": "pipe-0",
        "ls --color=always -d .": "\x1b[",
        "node -e 'console.log(process.version.startsWith(\"v\") ? \"node-ok\" : \"no\")'": "node-ok",
    }
    for command, expected in checks.items():
        result = await runner.run(command, timeout_s=60)
        assert expected in result.output and not result.refused, (command, result.output)
    piped = await runner.run("seq 1 1000000 | head -1")
    assert "Broken pipe" not in piped.output and piped.output.strip() == "1"


async def test_interactive_bash_with_job_control_in_the_sandbox(work: Path) -> None:
    runner = runner_for(work, OPEN_POLICY)
    async with runner.running():
        shell = await runner.start("bash --norc --noprofile -i")
        assert shell.child.sandboxed
        first = await runner.wait(shell, until="input", timeout_s=20)
        assert first.waiting_for_input
        await runner.send(shell, runner.plan_send(shell, "sleep 60 &\r", None), hold_partial_lines=False)
        await runner.send(shell, runner.plan_send(shell, "jobs; echo jobs-$((2+3))\r", None),
                          hold_partial_lines=False)
        out = await wait_for(runner, shell, "jobs-5")
        assert "Running" in out and "sleep 60" in out
        await runner.send(shell, runner.plan_send(shell, "sleep 50\r", None), hold_partial_lines=False)
        await anyio.sleep(0.5)
        await runner.send(shell, runner.plan_send(shell, None, ["ctrl-c"]), hold_partial_lines=False)
        await runner.send(shell, runner.plan_send(shell, "echo after-$((3+4))\r", None), hold_partial_lines=False)
        await wait_for(runner, shell, "after-7")
        view = await runner.wait(shell, until="input", timeout_s=20)
        assert view.waiting_for_input and view.waiting_layer in ("kernel", "quiescence", "prompt")


# -- the agents' interface: node, a fresh HOME outside cwd, per-call env ------------------------------------------


async def test_a_fresh_home_outside_cwd_and_per_call_env(work: Path, outside: Path) -> None:
    home = outside.parent / "agent-home"
    home.mkdir()
    runner = runner_for(work, OPEN_POLICY, roots=(str(outside.parent),))
    result = await runner.run("echo $HOME $AGENT_FLAG; mkdir -p $HOME/.config && echo ok > $HOME/.config/f && "
                              "node -e 'console.log(require(\"os\").homedir())'",
                              writable=(str(home),), env={"HOME": str(home), "AGENT_FLAG": "flag-1"})
    assert result.exit_code == 0, result.output
    assert f"{home} flag-1" in result.output and (home / ".config" / "f").read_text() == "ok\n"
    denied = await runner.run(f"echo no > {outside.parent}/elsewhere.txt")  # writable for that call only
    assert denied.exit_code != 0 and not (outside.parent / "elsewhere.txt").exists()


def test_sandbox_on_without_bubblewrap_names_the_package(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "llmmixer.servers.pty_runner", "--sandbox", "on"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "bubblewrap" in done.stderr, done.stderr


async def test_a_key_typed_inline_never_reaches_the_run_events(tmp_path: Path) -> None:
    from llmmixer.orchestrator.config import Config, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    store = open_store("memory")
    async with Runs(Config(servers=default_servers()), store) as runs:
        run_id = await runs.start_command(f"FOO={CANARY} sh -c 'echo $FOO'", cwd=str(tmp_path))
        assert await runs.wait(run_id, 60)
        events = await store.read_after(None, run=run_id)
    started = [e for e in events if e.type == "run.started"]
    assert started and started[0].data["command"] == "FOO=[redacted] sh -c 'echo $FOO'"
    assert CANARY not in str([e.to_dict() for e in events])
