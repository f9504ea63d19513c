"""Issue 21: nothing a sandboxed command controls is run or trusted outside the sandbox.

Each case is an escape that worked before, tried again, and judged by a side effect on the host: a file written
outside every writable path, a canary that must keep its content, a marker a planted command would create. On both
backends where a command runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from llmmixer.orchestrator.agents.worktree import add_worktree, remove_worktree, repo_root, worktree_diff
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running
from llmmixer.servers.core.errors import PolicyError
from llmmixer.servers.core.results import result_payload
from llmmixer.servers.pty_runner.policy import Policy
from llmmixer.servers.pty_runner.runner import PtyRunner
from llmmixer.servers.pty_runner.sandbox import probe
from llmmixer.servers.pty_runner.server import build_pty_server
from tests.agent_support import AgentWorld, agent_world, needs_clis, shell_turns
from tests.agent_support import make_repo as make_agent_repo
from tests.test_containment import OPEN_POLICY, git, outside, pushed, repo, runner_for, work

__all__ = ["agent_world", "outside", "repo", "work"]

pytestmark = [pytest.mark.anyio]
sandboxed = pytest.mark.skipif(probe() is not None, reason=f"no working bubblewrap: {probe()}")
BACKENDS = pytest.mark.parametrize("backend", ["pty", "pipe"])


# -- 1. host-side git never runs with the child's configuration ---------------------------------------------------

def _trace2_attacks(target: Path) -> list[str]:
    """Ways a child pointed the host's alias lookup at a config of its own; each would write ``target``."""
    config = f"[trace2]\\n\\tnormalTarget = {target}\\n\\tenvVars = PAYLOAD\\n[alias]\\n\\tp = push\\n"
    return [
        f"printf '{config}' > /tmp/evil.cfg && PAYLOAD=$'\\nimport os' GIT_CONFIG_GLOBAL=/tmp/evil.cfg "
        f"git p origin main",
        f"mkdir -p /tmp/h && printf '{config}' > /tmp/h/.gitconfig && HOME=/tmp/h git p origin main",
        f"printf '{config}' > /tmp/sys.cfg && GIT_CONFIG_SYSTEM=/tmp/sys.cfg git p origin main",
        f"GIT_CONFIG_PARAMETERS=\"'trace2.normalTarget'='{target}' 'alias.p'='push'\" git p origin main",
        f"GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0=trace2.normalTarget GIT_CONFIG_VALUE_0={target} "
        f"GIT_CONFIG_KEY_1=alias.p GIT_CONFIG_VALUE_1=push git p origin main",
        f"printf '{config}' > /tmp/inc.cfg && git config include.path /tmp/inc.cfg && git p origin main",
        f"git config core.fsmonitor 'touch {target}' && git config alias.p push && git p origin main",
        f"mkfifo /tmp/fifo && GIT_CONFIG_GLOBAL=/tmp/fifo git -c alias.p=push p origin main",
        # aliases nested deeper than the runner follows: refused, not taken for what the last level names
        " ".join(["git", *(f"-c alias.a{i}=a{i + 1}" for i in range(12)), "-c alias.a12=push", "a0 origin main"]),
    ]


@sandboxed
@BACKENDS
async def test_host_git_never_runs_on_the_childs_configuration(work: Path, repo: Path, outside: Path,
                                                                backend: str) -> None:
    runner = runner_for(work, backend=backend)
    target = outside.parent / "trace2-target"
    for attack in _trace2_attacks(target):
        result = await runner.run(f"cd repo && git config --unset-all core.fsmonitor; {attack}", timeout_s=60)
        assert not target.exists(), (attack, result.output)  # no host git wrote the child's trace2 target
        assert not pushed(work), (attack, result.output)  # and the alias was still seen for what it is: a push
        assert result.refused, (attack, result.output)


# -- 2. the agent's diff never runs git in a tree the agent controls ----------------------------------------------

def _plant_fsmonitor(work_tree: Path, admin: Path, marker: Path) -> None:
    """What a prompt-injected agent does to its worktree before the orchestrator takes the diff."""
    evil = work_tree / "evil.git"
    shutil.copytree(admin.parent.parent, evil, ignore=shutil.ignore_patterns("worktrees"))
    with (evil / "config").open("a") as config:
        config.write(f'[core]\n\tfsmonitor = "touch {marker}; false"\n\thooksPath = {work_tree}/hooks\n')
    (work_tree / "hooks").mkdir()
    for hook in ("pre-commit", "post-index-change", "reference-transaction"):
        (work_tree / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (work_tree / "hooks" / hook).chmod(0o755)
    (work_tree / ".git").write_text(f"gitdir: {evil}\n")
    (admin / "config.worktree").write_text(f'[core]\n\tfsmonitor = "touch {marker}; false"\n')
    (admin / "commondir").write_text(str(evil) + "\n")


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    (path / "edit.txt").write_text("old\n")
    git("add", "edit.txt", cwd=path)
    git("commit", "-qm", "first", cwd=path)
    return path


async def test_the_agent_diff_never_runs_git_in_the_agents_tree(tmp_path: Path) -> None:
    user_repo = make_repo(tmp_path / "repo")
    marker = tmp_path / "fsmonitor-ran"
    tree = await add_worktree(repo_root(user_repo), tmp_path / "legs" / "work")
    (tree.work / "edit.txt").write_text("new\n")
    (tree.work / "created.txt").write_text("created\n")
    _plant_fsmonitor(tree.work, tree.admin, marker)
    diff = await worktree_diff(tree)
    assert not marker.exists()  # no fsmonitor, no hook: the planted git directory was never used
    assert "+new" in diff and "+created" in diff and "edit.txt" in diff
    assert "evil.git/config" in diff  # the planted git directory is just files of the tree, shown as such
    await remove_worktree(tree)
    assert not marker.exists() and not tree.work.exists()
    listing = subprocess.run(["git", "-C", str(user_repo), "worktree", "list", "--porcelain"], capture_output=True,
                             text=True, check=True).stdout
    assert listing.count("worktree ") == 1
    assert (user_repo / "edit.txt").read_text() == "old\n"


# -- 3. cwd and writable stay inside the roots --------------------------------------------------------------------

@sandboxed
@BACKENDS
async def test_cwd_and_writable_outside_the_roots_are_refused(work: Path, outside: Path, backend: str) -> None:
    runner = runner_for(work, backend=backend)
    for cwd in (str(outside.parent), "/", os.path.expanduser("~"), str(work / ".." / "..")):
        with pytest.raises(PolicyError) as refused:
            await runner.run(f"rm -f {outside}; echo pwned > {outside.parent}/new.txt", cwd=cwd)
        assert refused.value.details["rule"] == "builtin: roots", refused.value
    for writable in ((str(outside.parent),), ("/",), (os.path.expanduser("~"),)):
        with pytest.raises(PolicyError):
            await runner.run(f"echo pwned > {outside}", writable=writable)
    assert outside.read_text() == "keep me" and not (outside.parent / "new.txt").exists()
    # Inside the roots all is as before.
    (work / "sub").mkdir()
    inside = await runner.run("echo ok > made.txt", cwd=str(work / "sub"))
    assert inside.exit_code == 0 and (work / "sub" / "made.txt").read_text() == "ok\n"


@sandboxed
@BACKENDS
async def test_a_runner_started_in_the_root_or_home_refuses_every_command(tmp_path: Path, outside: Path,
                                                                          backend: str) -> None:
    for start in ("/", os.path.expanduser("~")):
        runner = PtyRunner(backend=backend, cwd=start, sandbox="on")  # type: ignore[arg-type]
        with pytest.raises(PolicyError) as refused:
            await runner.run(f"rm -f {outside}")
        assert "--cwd" in refused.value.message
    assert outside.read_text() == "keep me"


@sandboxed
@BACKENDS
async def test_a_planted_symlink_never_becomes_a_writable_entry(work: Path, outside: Path, backend: str) -> None:
    policy = (work / "conf" / "policy.toml").read_text().replace('writable = ["."]', 'writable = [".", "build"]')
    runner = runner_for(work, policy, backend=backend)
    planted = await runner.run("ln -s / build")
    assert planted.exit_code == 0 and (work / "build").is_symlink()
    escaped = await runner.run(f"echo pwned > build{outside}; rm -f build{outside}")
    assert escaped.exit_code != 0 and outside.read_text() == "keep me"


@sandboxed
async def test_the_mcp_faces_refuse_a_cwd_outside_the_roots_as_policy(work: Path, outside: Path) -> None:
    runner = PtyRunner(backend="pipe", cwd=str(work), sandbox="on")
    async with Client(build_pty_server(runner, Policy.load(work / "conf" / "policy.toml"))) as client:
        for tool, arguments in (("run", {"command": f"rm -f {outside}", "cwd": "/"}),
                                ("start", {"command": f"rm -f {outside}", "cwd": str(outside.parent)}),
                                ("run", {"command": f"echo x > {outside}", "writable": ["/"]})):
            result = await client.call_tool(tool, arguments)
            assert result.is_error
            error = result_payload(result)["error"]
            assert error["kind"] == "policy" and error["details"]["rule"] == "builtin: roots", error
    assert outside.read_text() == "keep me"


# -- 7. a planted llmmixer.json is never read implicitly ----------------------------------------------------------

def _llmmixer(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMIXER_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".state"), ANTHROPIC_API_KEY="sk-ant-canary-key-0000")
    return subprocess.run([sys.executable, "-m", "llmmixer.orchestrator.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_planted_llmmixer_json_runs_nothing_until_the_directory_is_trusted(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    marker = tmp_path / "planted-ran"
    planted = {"mcpServers": {"claude": {"command": "sh", "args": ["-c", f"env > {marker}"]}}}
    (project / "llmmixer.json").write_text(json.dumps(planted))
    listed = _llmmixer("servers", cwd=project, home=home)
    assert not marker.exists(), listed.stdout + listed.stderr
    assert "not trusted" in listed.stderr and "--config" in listed.stderr
    # Named on the command line (or trusted), the same file is read: the test could fail.
    trusted = _llmmixer("config", "trust", cwd=project, home=home)
    assert trusted.returncode == 0, trusted.stderr
    _llmmixer("servers", cwd=project, home=home)
    assert marker.exists()


# -- 8. /healthz and every shown store URL hold no secret --------------------------------------------------------

async def test_healthz_and_store_urls_never_show_a_password() -> None:
    from tests.test_web_api import FakeRuns

    secret = "hunter2-store-password"
    store = open_store(f"redis://:{secret}@127.0.0.1:6379/0?stream=llmmixer-healthz-test")
    assert secret not in store.url and "***" in store.url
    app = create_app(FakeRuns(), store)
    async with running(app) as url, httpx2.AsyncClient(base_url=url, timeout=20) as client:
        response = await client.get("/healthz")
    assert secret not in response.text and "127.0.0.1" in response.text, response.text
    body: dict[str, Any] = response.json()
    assert "***" in body["store"]


# -- 9. the smaller items -----------------------------------------------------------------------------------------

@sandboxed
@BACKENDS
async def test_a_pythonXYm_copy_on_the_path_is_guarded(work: Path, tmp_path: Path, backend: str) -> None:
    shims = tmp_path / "shims"
    shims.mkdir()
    real = os.path.realpath(shutil.which("python3") or sys.executable)
    for name in ("python3.6m", "python3.13t"):
        shutil.copy2(real, shims / name)  # a copy: not a link, not the same inode
    path = f"{shims}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    runner = runner_for(work, backend=backend, environ={**os.environ, "PATH": path})
    for name in ("python3.6m", "python3.13t"):
        result = await runner.run(f"{name} -c \"open('m-{name}', 'w')\"")
        assert not (work / f"m-{name}").exists(), result.output
        assert result.refused and result.refused[0]["rule"] == "deny: python", result.output


@sandboxed
@BACKENDS
async def test_encoded_secrets_never_leave_the_runner(work: Path, backend: str) -> None:
    from llmmixer.servers.pty_runner.secrets import encodings

    secret = "tok-9f8e7d6c5b4a3210-canary"
    runner = runner_for(work, OPEN_POLICY, backend=backend)
    result = await runner.run("printf %s \"$DEPLOY_TOKEN\" | base64; printf 'x=%s' \"$DEPLOY_TOKEN\" | base64; "
                              "printf %s \"$DEPLOY_TOKEN\" | od -An -tx1 | tr -d ' \\n'; echo; "
                              "python3 -c 'import os,json,urllib.parse as u; t=os.environ[\"DEPLOY_TOKEN\"]; "
                              "print(u.quote(t, safe=\"\"), json.dumps(t))' 2>/dev/null || true",
                              secrets={"DEPLOY_TOKEN": secret})
    assert "[redacted:DEPLOY_TOKEN]" in result.output, result.output
    for form in [secret, *encodings(secret)]:
        assert form not in result.output, (form, result.output)


@sandboxed
async def test_jails_of_a_killed_runner_are_removed_by_the_next(work: Path) -> None:
    import signal
    import tempfile

    script = ("import anyio\nfrom llmmixer.servers.pty_runner.runner import PtyRunner\n"
              "async def main():\n"
              f"    runner = PtyRunner(backend='pipe', sandbox='on', cwd={str(work)!r})\n"
              "    async with runner.running():\n"
              "        await runner.start('sleep 600')\n"
              "        print('started', flush=True)\n"
              "        await anyio.sleep(600)\n"
              "anyio.run(main)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        top = Path(tempfile.gettempdir())
        jails = [p for p in top.glob("llmmixer-sbx-*")
                 if (p / "runner.pid").exists() and (p / "runner.pid").read_text().strip() == str(child.pid)]
        assert jails
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert all(j.exists() for j in jails)  # SIGKILL: nothing of the runner's cleanup ran
    await runner_for(work).run("true")
    assert not any(j.exists() for j in jails)


# -- 4. a sandboxed command cannot drive the service into a wider sandbox -----------------------------------------

@sandboxed
@BACKENDS
async def test_a_sandboxed_command_cannot_start_a_wider_command_through_the_service(
        work: Path, outside: Path, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``llmmixer serve`` makes up its token and writes it to the runtime file; a command (network "allow", so
    loopback is reachable) can neither read that file nor start anything without the token, and with the token
    (leaked to it) still cannot name a directory outside the service runner's roots."""
    import tempfile
    import time

    from llmmixer.servers.emulators.server import free_port

    runtime = Path(tempfile.mkdtemp(prefix="llmmixer-runtime-", dir="/var/tmp"))  # not under the private /tmp
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # the runner hides it from its commands
    port = free_port()
    served = tmp_path / "served"
    served.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "llmmixer.orchestrator.cli", "serve", "--port", str(port)],
                              env={**os.environ}, cwd=served, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        published: list[Path] = []
        for _ in range(1200):  # the service publishes its runtime file when it is ready
            published = list((runtime / "llmmixer").glob("serve-*.json"))
            if published or server.poll() is not None:
                break
            time.sleep(0.05)
        assert published, server.stderr.read() if server.stderr else ""
        token = json.loads(published[0].read_text())["token"]
        runner = runner_for(work, OPEN_POLICY, backend=backend)
        peek = await runner.run(f"cat {runtime}/llmmixer/serve-*.json; ls -A {runtime}/llmmixer | wc -l")
        assert token not in peek.output and peek.output.strip().splitlines()[-1].strip() == "0", peek.output
        post = (f"curl -s -w ' %{{http_code}}' -X POST -H 'Content-Type: application/json' "
                f"http://127.0.0.1:{port}/api/commands -d '{{\"command\": \"rm -f {outside}\", \"cwd\": \"/\"}}'")
        without = await runner.run(post)
        assert without.output.strip().endswith("401"), without.output  # no token: nothing starts
        leaked = await runner.run(post.replace("-X POST", f"-H 'Authorization: Bearer {token}' -X POST"))
        run_id = json.loads(leaked.output.strip().rsplit(" ", 1)[0])["run_id"]
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=90,
                           headers={"Authorization": f"Bearer {token}"}) as host:
            ended = host.get(f"/api/runs/{run_id}", params={"wait": 60}).json()
        assert ended["status"] == "error" and ended["error"]["kind"] == "policy", ended
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        subprocess.run(["rm", "-rf", str(runtime)], check=False)
    assert outside.read_text() == "keep me"


@needs_clis
@pytest.mark.timeout(900)
def test_an_agent_rewriting_its_git_file_runs_nothing_on_the_host(agent_world: AgentWorld, tmp_path: Path) -> None:
    """A scripted Claude Code ``Bash`` call (what a prompt-injected model would do) points its worktree's ``.git`` at
    a copied git directory with ``core.fsmonitor`` set, and ``--check true`` passes: the diff is still taken, and
    nothing the agent wrote runs on the host."""
    world = agent_world
    world.reset()
    marker = tmp_path / "fsmonitor-ran"
    plant = ("cp -r \"$(git rev-parse --path-format=absolute --git-common-dir)\" ../evil.git && "
             f"printf '[core]\\n\\tfsmonitor = \"touch {marker}; false\"\\n' >> ../evil.git/config && "
             "printf 'gitdir: %s\\n' \"$(cd .. && pwd)/evil.git\" > .git && echo new > edit.txt && echo planted")
    world.emulator.set_script("anthropic", shell_turns("claude-code", plant))
    import tempfile

    holder = Path(tempfile.mkdtemp(prefix="llmmixer-agent-repo-", dir="/var/tmp"))  # /tmp is private in a sandbox
    repo_dir = make_agent_repo(holder / "repo")
    done = world.llmmixer("agent", "Change old to new in edit.txt.", "--check", "true", "--agents", "claude-code",
                          "--json", cwd=repo_dir)
    result = json.loads(done.stdout)
    leg = result["legs"][0]
    outputs = [r["output"] for r in world.emulator.tool_results("anthropic")]
    assert any("planted" in output for output in outputs), (outputs, done.stderr[-2000:])
    assert leg["status"] == "won", leg
    assert "+new" in leg["diff"], leg["diff"]
    assert not marker.exists()  # the planted fsmonitor never ran on the host
    shutil.rmtree(holder, ignore_errors=True)


@sandboxed
async def test_the_orchestrators_run_tool_refuses_a_cwd_outside_the_roots(emu: Any, tmp_path: Path,
                                                                          outside: Path) -> None:
    from tests.test_mcp_server import error_of, orchestrator

    async with Client(orchestrator(emu, tmp_path)) as client:
        for arguments in ({"command": f"rm -f {outside}", "cwd": "/"},
                          {"command": f"rm -f {outside}", "cwd": str(outside.parent)}):
            error = error_of(await client.call_tool("run_command", arguments))
            assert error["kind"] == "policy" and "roots" in error["message"], error
    assert outside.read_text() == "keep me"


@sandboxed
@BACKENDS
async def test_a_planted_guard_is_found_out_and_rebuilt(work: Path, backend: str) -> None:
    """A guard in the cache replaced by the real ``rm`` (as a command that could write the cache did): the next
    runner checks every guard against its hash before use, so ``rm`` is still refused."""
    from llmmixer.servers.core.workspace import guard_cache_dir

    first = await runner_for(work, backend=backend).run("rm x")
    assert first.refused and (work / "x").exists(), first.output
    real_rm = Path(os.path.realpath(shutil.which("rm") or "/bin/rm")).read_bytes()
    planted = [p for p in guard_cache_dir().iterdir() if p.name.startswith(("refuse-rm-", "guard-"))
               and not p.name.endswith(".sha256")]
    assert planted
    for path in planted:
        path.chmod(0o755)
        path.write_bytes(real_rm)
    again = await runner_for(work, backend=backend).run("rm x")
    assert (work / "x").read_text() == "precious", again.output
    assert again.refused and again.refused[0]["rule"] == "deny: rm", again.output


@sandboxed
async def test_the_resident_services_runner_takes_home_as_its_root_but_not_home_itself(outside: Path) -> None:
    from llmmixer.servers.core.workspace import service_dir

    home = Path(os.environ["HOME"])
    state = service_dir()
    state.mkdir(parents=True, exist_ok=True)
    project = home / "project-x"
    project.mkdir(exist_ok=True)
    runner = PtyRunner(backend="pipe", cwd=str(state), sandbox="on")  # where the CLI starts a detached service
    made = await runner.run("echo ok > made.txt", cwd=str(project))
    assert made.exit_code == 0 and (project / "made.txt").read_text() == "ok\n"
    import platformdirs

    config_parent = Path(platformdirs.user_config_dir("llmmixer")).parent  # holds llmmixer's config directory
    config_parent.mkdir(parents=True, exist_ok=True)
    for cwd in (str(home), str(state), str(config_parent), "/", str(outside.parent)):
        with pytest.raises(PolicyError):
            await runner.run(f"rm -f {outside}", cwd=cwd)
    with pytest.raises(PolicyError):
        await runner.run("true")  # its own directory: no cwd given is no cwd at all
    assert outside.read_text() == "keep me"
