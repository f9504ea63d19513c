"""Issue 21: an approved program does not hand its approval to what it starts; ``network = "deny"`` hides unix
sockets. Judged on the host: a push that must not land in a bare remote, a connection a listener must not get.

``git status`` is allowed (only ``ask: git push`` is a rule), so each command below runs a real, approved git and
then tries to turn it into ``git push`` without asking: through its ``/proc/<pid>/exe`` from a child it starts (a
``!`` alias, fsmonitor, a hook, ``core.sshCommand``, ``core.pager``), through ``LD_PRELOAD``, or by speaking the
control socket's protocol itself to get the real program's descriptor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmmixer.servers.core.workspace import guard_cache_dir
from llmmixer.servers.pty_runner.sandbox import probe
from tests.test_containment import POLICY, pushed, repo, runner_for, work

__all__ = ["repo", "work"]

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(probe() is not None, reason=f"no working bubblewrap: {probe()}")]
BACKENDS = pytest.mark.parametrize("backend", ["pty", "pipe"])

PUSH = "/proc/$PPID/exe push origin main"
REEXEC_BYPASSES = [
    f"git -c alias.x='!{PUSH}' x",
    f"git -c core.fsmonitor='{PUSH}; false #' status",
    f"printf '#!/bin/sh\\n{PUSH}\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && "
    f"git -c user.name=t -c user.email=t@t commit -q --allow-empty -m x",
    f"git -c core.sshCommand='{PUSH}; false #' fetch ssh://example.invalid/r.git",
    f"git -c core.pager='{PUSH}; cat' -p log -1",
]

PRELOAD_C = r"""
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void hijack(void) {
    if (getenv("HIJACKED")) return;
    setenv("HIJACKED", "1", 1);
    char *argv[] = {"git", "push", "origin", "main", NULL};
    execv("/proc/self/exe", argv);
}
"""

# Asks for `git status` as a guard would, then runs the descriptor it gets as `git push`.
CLIENT_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
extern char **environ;
int main(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, "/dev/llmmixer/control");
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) { perror("connect"); return 2; }
    char cwd[4096], body[8192];
    getcwd(cwd, sizeof(cwd));
    const char *fields[] = {"ask", "git", "ask: git push", "/usr/bin/git", cwd, "2", "git", "status"};
    size_t n = 0;
    for (int i = 0; i < 8; i++) { size_t k = strlen(fields[i]) + 1; memcpy(body + n, fields[i], k); n += k; }
    unsigned char head[4] = {n & 255, (n >> 8) & 255, 0, 0};
    write(fd, head, 4);
    write(fd, body, n);
    char answer[4096];
    struct iovec io = {.iov_base = answer, .iov_len = sizeof(answer) - 1};
    union { struct cmsghdr align; char data[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.data,
                         .msg_controllen = sizeof(control.data)};
    ssize_t got = recvmsg(fd, &msg, 0);
    int real = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_type == SCM_RIGHTS) memcpy(&real, CMSG_DATA(c), sizeof(int));
    if (real < 0) { answer[got > 0 ? got : 0] = 0; printf("no descriptor: %s\n", answer + 1); return 3; }
    char *argv[] = {"git", "push", "origin", "main", NULL};
    syscall(SYS_execveat, real, "", argv, environ, AT_EMPTY_PATH);
    perror("execveat");
    return 4;
}
"""


def compile_into(directory: Path, name: str, source: str, *flags: str) -> Path:
    src = directory / f"{name}.c"
    src.write_text(source)
    out = directory / name
    subprocess.run(["cc", *flags, "-o", str(out), str(src)], check=True, capture_output=True)
    return out


@pytest.fixture
def visible_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The guard cache outside /tmp (which a sandbox replaces by a private one), as on a user's machine."""
    top = Path(tempfile.mkdtemp(prefix="llmmixer-cache-", dir="/var/tmp"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(top))
    yield top
    subprocess.run(["rm", "-rf", str(top)], check=False)


@BACKENDS
async def test_an_approved_git_cannot_be_re_executed_as_git_push(work: Path, repo: Path, backend: str,
                                                                 visible_cache: Path) -> None:
    runner = runner_for(work, backend=backend)
    compile_into(work, "preload.so", PRELOAD_C, "-shared", "-fPIC")
    compile_into(work, "client", CLIENT_C)
    attempts = [*REEXEC_BYPASSES, "LD_PRELOAD=$PWD/../preload.so git status", "../client"]
    for attempt in attempts:
        result = await runner.run(f"cd repo && {attempt}", timeout_s=60)
        assert not pushed(work), (attempt, result.output)
    client = await runner.run("cd repo && ../client")
    assert "no descriptor" in client.output and client.refused, client.output
    # Harmless git through the same (now exec-only) program keeps working: status, a commit with a hook, a pager.
    harmless = await runner.run("cd repo && git status --short && git -c core.pager=cat -p log --oneline -1 && "
                                "printf '#!/bin/sh\\necho hook-ran\\n' > .git/hooks/pre-commit && "
                                "git -c user.name=t -c user.email=t@t commit -q --allow-empty -m ok && git log -1 "
                                "--format=%s")
    assert harmless.exit_code == 0 and "hook-ran" in harmless.output and "ok" in harmless.output, harmless.output
    # The exec-only copies an approval runs are not reachable by path: the guard cache is empty inside.
    cache = guard_cache_dir()
    assert cache.is_relative_to(visible_cache) and list(cache.glob("exec-git-*"))  # the host made one for the approved `git status` runs above
    direct = await runner.run(f"ls -A {cache} | wc -l; cd repo && for f in {cache}/exec-*; do \"$f\" push origin main; "
                              "done")
    assert direct.output.strip().splitlines()[0].strip() == "0", direct.output
    assert not pushed(work), direct.output
    # Approved for real (the host said yes before the command started): the push lands, so the test can fail.
    approved = await runner.run("cd repo && git push origin main", approvals=("ask: git push",))
    assert approved.exit_code == 0, approved.output
    assert pushed(work)


# -- unix sockets under network = "deny" -------------------------------------------------------------------------

@contextlib.contextmanager
def unix_listener() -> Iterator[tuple[str, list[bytes]]]:
    """A listener on a host unix socket under /run (where database sockets live); records what connects."""
    directory = tempfile.mkdtemp(prefix="llmmixer-sock-", dir="/run")
    path = os.path.join(directory, "db.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    got: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    got.append(conn.recv(100) or b"connected")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield path, got
    finally:
        stop.set()
        server.close()
        thread.join(5)
        subprocess.run(["rm", "-rf", directory], check=False)


DENY_POLICY = POLICY.replace('network = "allow"', 'network = "deny"').replace(
    'deny = ["rm", "curl", "python", "shred"]', 'deny = ["shutdown"]')


@pytest.mark.skipif(not os.access("/run", os.W_OK), reason="needs a writable /run for the host listener")
@BACKENDS
async def test_network_deny_hides_host_unix_sockets(work: Path, backend: str) -> None:
    with unix_listener() as (path, got):
        connect = (f"python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{path}'); "
                   f"s.sendall(b'hello')\"")
        denied = await runner_for(work, DENY_POLICY, backend=backend).run(connect)
        assert denied.exit_code != 0 and got == [], denied.output
        listed = await runner_for(work, DENY_POLICY, backend=backend).run("ls /run /var/run | wc -l")
        assert listed.output.strip().splitlines()[-1].strip() in ("0", "1", "2", "3"), listed.output
        # Named in `sockets`, the same socket is reachable: the test can fail.
        allowed = DENY_POLICY.replace('network = "deny"', f'network = "deny"\nsockets = ["{path}"]')
        reached = await runner_for(work, allowed, backend=backend).run(connect)
        assert reached.exit_code == 0 and got == [b"hello"], reached.output


async def test_the_child_holds_no_capability_and_no_new_privileges(work: Path) -> None:
    result = await runner_for(work).run("grep -E '^(CapPrm|CapEff|CapAmb|NoNewPrivs)' /proc/self/status")
    fields = dict(line.split(":\t") for line in result.output.replace("\r", "").strip().splitlines())
    assert fields["NoNewPrivs"].strip() == "1", result.output
    assert all(int(fields[k], 16) == 0 for k in ("CapPrm", "CapEff", "CapAmb")), result.output


CAP_PROBE = r"""
import socket
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect('/dev/llmmixer/control')
    return s
request = b'\0'.join([b'exec', b'', b'', b'/usr/bin/x', b'/', b'1', b'x']) + b'\0'
def ask(s):
    try:
        s.sendall(len(request).to_bytes(4, 'little') + request)
        return s.recv(100)[:1]
    except OSError:  # closed before it could be written to
        return b""
big = connect()
big.sendall((1 << 24).to_bytes(4, 'little'))
print('big', big.recv(1))
held = [connect() for _ in range(8)]
for s in held:
    s.sendall((1 << 20).to_bytes(4, 'little') + b'x' * 1000)
extra = [ask(connect()) for _ in range(4)]
print('extra', extra)
for s in held:
    s.close()
for _ in range(2000):  # until the runner has seen the closes and a slot is free again
    after = ask(connect())
    if after:
        break
print('after', after)
"""


async def test_the_control_socket_caps_what_one_command_can_hold(work: Path) -> None:
    """A command holds at most 8 connections, each of at most 1 MiB: beyond that it is cut off, not buffered."""
    from tests.test_containment import OPEN_POLICY

    (work / "probe.py").write_text(CAP_PROBE)
    result = await runner_for(work, OPEN_POLICY).run("python3 probe.py", timeout_s=60)
    assert "big b''" in result.output, result.output  # a 16 MiB request: closed unread
    assert "extra [b'', b'', b'', b'']" in result.output, result.output  # 8 held: the rest closed, unanswered
    assert "after b'D'" in result.output, result.output  # a free slot again: answered (refused: not a guard)
