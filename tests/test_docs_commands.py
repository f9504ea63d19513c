"""issue 27, item 7: every command the docs show runs, for real, on the bundled emulators, or says in the docs what it
needs that a test does not have (``# needs a real key``, ``# needs network: installs``; see tools/doc_commands.py).

The commands of a page run in order, as a reader pastes them: in a bash of their own, in one working directory (a git
repository holding the files the docs name), with one fresh home per module and the emulators' environment; what a
command exports reaches the next. A server (``llmmixer serve``, ``llmmixer emulators``, an MCP server on stdio or
HTTP) is started, must answer (``/healthz``, MCP ``initialize``, the export lines) and is stopped with Ctrl-C; one
started with ``&`` stays up for the page's next commands. The port numbers the docs use are free ports here, and a
run id the docs show stands for the reader's newest run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import FAKE_KEYS, ISOLATED_PREFIXES, KEY_VARS

from llmmixer.servers.emulators.server import EmulatorServer, free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from doc_commands import DocCommand, doc_pages, page_commands, unshown_commands  # noqa: E402

# What a marker may say a command needs, so the docs say it one way.
NEEDS = ("a real key", "network", "docker", "Claude Desktop")
DOC_PORTS = (8765, 8900, 9002, 9003, 4318)  # serve, emulators, the servers page's two, OTLP over HTTP
DEFAULT_PORTS: dict[tuple[str, ...], int] = {("llmmixer", "serve"): 8765, ("llmmixer", "emulators"): 8900}
RUN_ID = re.compile(r"\b[0-9a-f]{16}\b")
TIMEOUT_S = 300  # per command: generous, the machine is shared
FILES = {  # the files the docs' commands name, as a reader would have them
    "person.schema.json": json.dumps({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}),
    "policy.toml": '[policy]\ndefault = "allow"\n',
}


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that takes whatever it is sent."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Reader:
    """A reader's machine: home, working directory, environment, and the ports standing for the docs' ones."""

    work: Path
    env: dict[str, str]
    ports: dict[int, int]
    running: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def localize(self, text: str) -> str:
        """The command as it runs here: the docs' ports are free ports, a run id is the newest run's."""
        background = text.endswith("&")
        text = text.removesuffix("&").rstrip()
        default = DEFAULT_PORTS.get(tuple(_program(text)))
        if default and not re.search(r"--(port|status|stop)\b", text):
            text += f" --port {default}"
        text += " &" if background else ""
        text = re.sub(r"\b(%s)\b" % "|".join(map(str, self.ports)), lambda m: str(self.ports[int(m[1])]), text)
        if RUN_ID.search(text):
            newest = json.loads(self.run(["llmmixer", "logs", "-n", "1", "--json"]).splitlines()[0])
            text = re.sub(r"(--cid\s+)?" + RUN_ID.pattern,
                          lambda m: m[1] + newest["conversation_id"] if m[1] else newest["run_id"], text)
        return text

    def run(self, argv: list[str]) -> str:
        done = subprocess.run(argv, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, text: str, *, pipes: bool = False) -> subprocess.Popen[str]:
        """Start a server; with ``pipes`` its stdin and stdout are ours, else its output goes to its log."""
        log = self.work.parent / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as out:
            process = subprocess.Popen(["bash", "-c", text if _assigns(text) else f"exec {text}"], cwd=self.work,
                                       env=self.env, text=True, start_new_session=True, stderr=out,
                                       stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                                       stdout=subprocess.PIPE if pipes else out)
        self.running.append(process)
        return process

    def stop_service(self) -> None:
        """Stop the resident service that the commands started for this environment, if any."""
        subprocess.run(["llmmixer", "serve", "--stop"], cwd=self.work, env=self.env, capture_output=True,
                       timeout=TIMEOUT_S)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        self.running.clear()


def _assigns(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", text))


@pytest.fixture(scope="module")
def reader(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    home = tmp_path_factory.mktemp("reader")
    work = home / "project"
    work.mkdir()
    for name, text in FILES.items():
        (work / name).write_text(text, encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    ports = {port: free_port() for port in DOC_PORTS}
    # curl reads ~/.curlrc: the docs' LAN host name is this machine.
    (home / ".curlrc").write_text(f"resolve = mixer.lan:{ports[8765]}:127.0.0.1\n", encoding="utf-8")
    (home / "run").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES) and k not in KEY_VARS}
    env.update(emulator.env, **FAKE_KEYS, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
               XDG_DATA_HOME=str(home / "data"), XDG_STATE_HOME=str(home / "state"),
               XDG_CACHE_HOME=str(home / "cache"), XDG_RUNTIME_DIR=str(home / "run"), COLUMNS="100",
               BROWSER="true",  # `llmmixer dashboard` opens "a browser" that exits at once
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    collector = ThreadingHTTPServer(("127.0.0.1", ports[4318]), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    emulator.reset()
    reading = Reader(work=work, env=env, ports=ports)
    # A reader has asked something before opening any page: `ask -c`, `logs show ID` have a run to refer to.
    reading.run(["llmmixer", "ask", "Name a prime above 100", "--models", "claude,gpt"])
    try:
        yield reading
    finally:
        reading.stop_all()
        reading.stop_service()
        collector.shutdown()


# -- how each kind of command runs ---------------------------------------------------------------------------------

def _program(text: str) -> list[str]:
    """The command's program and subcommand words (after any VAR=value)."""
    words = [w for w in text.split() if not _assigns(w)]
    return words[:2]


def _is_mcp_server(words: list[str]) -> bool:
    """``llmmixer-NAME``, ``llmmixer server NAME`` (the same), ``llmmixer mcp``."""
    return bool(words) and (words[0].startswith("llmmixer-") or words in (["llmmixer", "mcp"], ["llmmixer", "server"]))


def _is_stdio_mcp(words: list[str], text: str) -> bool:
    return _is_mcp_server(words) and "--transport" not in text


def _is_http_server(words: list[str], text: str) -> bool:
    if words == ["llmmixer", "serve"]:
        return not re.search(r"--(status|stop)\b", text)
    return _is_mcp_server(words) and "--transport" in text


def _port_of(text: str) -> int:
    found = re.search(r"--port[ =](\d+)", text)
    assert found, f"no --port in {text!r}"
    return int(found[1])


def _await_answer(reader: Reader, process: subprocess.Popen[str], url: str) -> int:
    """The HTTP status ``url`` answers with, once it answers."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        assert process.poll() is None, f"it exited with {process.returncode}: {reader.logs[-1].read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer within {TIMEOUT_S} s"
            time.sleep(0.2)


def _interrupt(reader: Reader, process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a reader stops a server in the foreground: it exits cleanly (no traceback)."""
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=TIMEOUT_S)
    log = reader.logs[-1].read_text()
    assert "Traceback" not in log, log


def _run_stdio_mcp(reader: Reader, text: str) -> None:
    process = reader.start(text, pipes=True)
    assert process.stdin is not None and process.stdout is not None
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "docs", "version": "0"}}}
    process.stdin.write(json.dumps(hello) + "\n")
    process.stdin.flush()
    answer = json.loads(process.stdout.readline() or "{}")
    assert answer.get("result", {}).get("serverInfo"), (answer, reader.logs[-1].read_text())
    process.stdin.close()
    process.wait(timeout=TIMEOUT_S)


def _run_server(reader: Reader, text: str, words: list[str]) -> None:
    background = text.endswith("&")
    process = reader.start(text.removesuffix("&").strip())
    port = _port_of(text)
    if words == ["llmmixer", "serve"]:
        assert _await_answer(reader, process, f"http://127.0.0.1:{port}/healthz") == 200
    else:  # an MCP endpoint answers (a bare GET is refused, or wants the token, but it answers)
        assert _await_answer(reader, process, f"http://127.0.0.1:{port}/mcp") < 500
    if not background:
        _interrupt(reader, process)


def _run_emulators(reader: Reader, text: str) -> None:
    process = reader.start(text, pipes=True)
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(8)]
    assert any(line.startswith("export ANTHROPIC_API_KEY=") for line in lines), lines
    _interrupt(reader, process)


def _run_chat(reader: Reader, text: str) -> None:
    """A chat of one question: the reader types it, then Ctrl-D."""
    done = subprocess.run(["bash", "-c", text], input="Why race models?\n", cwd=reader.work, env=reader.env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert "winner" in done.stdout, done.stdout


def _assert_json(out: str) -> None:
    """``--json`` and ``--data`` print JSON: one document, or one per line; something, not nothing."""
    assert out.strip(), "it printed nothing"
    try:
        json.loads(out)
    except ValueError:
        for line in out.splitlines():
            try:
                json.loads(line)
            except ValueError as error:
                raise AssertionError(f"not JSON: {line[:200]!r}") from error


def _run_once(reader: Reader, text: str) -> None:
    """A command that ends: exit 0; what it exports reaches the page's next commands."""
    env_file = reader.work.parent / "env.after"
    script = f"{text}\nstatus=$?\nenv -0 > {shlex.quote(str(env_file))}\nexit $status\n"
    done = subprocess.run(["bash", "-c", script], cwd=reader.work, env=reader.env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if re.search(r"\s--(json|data)\b", text):
        _assert_json(done.stdout)
    exported = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
    reader.env.update({k: v for k, v in exported.items() if k not in ("_", "SHLVL", "PWD", "OLDPWD")})


def run_command(reader: Reader, command: DocCommand) -> None:
    text = reader.localize(command.text)
    words = _program(text)
    if words == ["llmmixer", "emulators"]:
        _run_emulators(reader, text)
    elif _is_stdio_mcp(words, text):
        _run_stdio_mcp(reader, text)
    elif _is_http_server(words, text):
        _run_server(reader, text, words)
    elif words == ["llmmixer", "chat"]:
        _run_chat(reader, text)
    else:
        _run_once(reader, text)


# -- the tests -----------------------------------------------------------------------------------------------------

PAGES = [page for page in doc_pages() if page_commands(page)]


def test_each_marker_says_what_the_command_needs() -> None:
    odd = [f"{c.where}: needs {c.needs}" for page in PAGES for c in page_commands(page)
           if c.needs is not None and not c.needs.startswith(NEEDS)]
    assert not odd, f"a `# needs …` marker starts with one of {NEEDS}: {odd}"


def test_commands_are_shown_in_shell_blocks() -> None:
    """A command in a ``text`` or bare block would escape the test: it goes in a ``sh`` block."""
    hidden = [line for page in doc_pages() for line in unshown_commands(page)]
    assert not hidden, f"put these in a ```sh block (the test runs those): {hidden}"


def test_the_markers_scope(tmp_path: Path) -> None:
    """``# needs …`` alone covers the rest of its block, at a line's end that line; a quoted ``#`` is no comment."""
    page = tmp_path / "page.md"
    page.write_text("```sh\nllmmixer servers   # what runs\necho '# not a comment' \\\n  done   # needs network\n"
                    "# needs a real key:\nllmmixer ask hi\nllmmixer ask ho\n```\n\n```sh\nllmmixer logs\n```\n"
                    "```text\nllmmixer models\n```\n", encoding="utf-8")
    assert [(c.line, c.text, c.needs) for c in page_commands(page)] == [
        (2, "llmmixer servers", None), (3, "echo '# not a comment'  done", "network"),
        (6, "llmmixer ask hi", "a real key:"), (7, "llmmixer ask ho", "a real key:"), (11, "llmmixer logs", None)]
    assert unshown_commands(page) == ["page.md:14: llmmixer models"]


def test_a_command_that_fails_fails_the_page(reader: Reader) -> None:
    for text in ("llmmixer no-such-command", "llmmixer serve --port 1 --host 256.0.0.1", "llmmixer-claude --no-such",
                 "llmmixer server no-such-server"):
        with pytest.raises(AssertionError):
            run_command(reader, DocCommand("page.md", 1, text, None))
        reader.stop_all()


def test_llmmixer_server_name_is_run_as_the_mcp_server_it_is(reader: Reader) -> None:
    run_command(reader, DocCommand("page.md", 1, "llmmixer server claude", None))  # initialize answers


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_command_of_the_page_runs(reader: Reader, page: Path) -> None:
    failed = []
    before = dict(reader.env)
    try:
        for command in page_commands(page):
            if command.needs is not None:
                continue
            try:
                run_command(reader, command)
            except (AssertionError, subprocess.TimeoutExpired) as error:
                failed.append(f"{command.where}: `{command.text}`: {error}")
    finally:
        reader.stop_all()
        if reader.env != before:  # what a page exported stays on it, with the service its variables started
            reader.stop_service()
            reader.env = before
    assert not failed, ("these commands fail; fix them, or mark what they need (`# needs a real key`):\n"
                        + "\n".join(failed))
