"""A kept leg's CLI session, kept so the leg can be continued (``llmmixer agent continue RUN AGENT "follow-up"``).

When a kept leg ends, its CLI's session id (Claude Code's ``session_id``, Codex's ``thread_id``, Gemini CLI's
``session_id``, as each CLI's stream reported it) goes to ``<agents dir>/.sessions/<run>/<agent>/session.json``,
written by the orchestrator, and the leg's HOME (where each CLI keeps its transcript) is copied beside it. A
continuation copies that HOME into the new leg's fresh HOME, reseeds the CLI's config over it, and resumes the
session by its id.

The HOME was written by the sandboxed CLI, so it is only ever data carried from one sandbox to the next: nothing in
it is read, run or followed on the host. :func:`copy_files` copies directories and regular files only (a symlink,
FIFO or device is left behind), opening nothing through a link, so neither the copy out nor the copy back can be
turned into a read or write elsewhere on the host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from ...servers.core.errors import NotFoundError
from ...servers.core.workspace import agents_dir

__all__ = ["Session", "sessions_dir", "save_session", "load_session", "restore_home", "forget_session",
           "copy_files", "MAX_FILE_BYTES"]

MAX_FILE_BYTES = 64 * 1024 * 1024  # a bigger file in the HOME is not a session transcript: left behind
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


def sessions_dir() -> Path:
    return agents_dir() / ".sessions"


@dataclass(frozen=True)
class Session:
    """One kept leg's session: which CLI, and the id to resume it by."""

    run_id: str
    agent: str
    cli: str
    session_id: str

    @property
    def path(self) -> Path:
        return sessions_dir() / self.run_id / self.agent

    @property
    def home(self) -> Path:
        return self.path / "home"


def copy_files(source: Path, target: Path) -> None:
    """Directories and regular files under ``source`` into ``target`` (made fresh); links and special files are
    skipped, and no file is opened through a link."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for top, dirs, files in os.walk(source, followlinks=False):
        relative = Path(top).relative_to(source)
        for name in dirs:
            if not os.path.islink(os.path.join(top, name)):
                (target / relative / name).mkdir(exist_ok=True)
        dirs[:] = [name for name in dirs if not os.path.islink(os.path.join(top, name))]
        for name in files:
            _copy_file(os.path.join(top, name), target / relative / name)


def _copy_file(source: str, target: Path) -> None:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # a link, or gone
    with os.fdopen(fd, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return
        with open(target, "xb") as writer:
            shutil.copyfileobj(reader, writer)


def save_session(home: Path, run_id: str, agent: str, cli: str, session_id: str | None) -> Session | None:
    """Keep the leg's session (its id and a copy of its HOME); None when the CLI reported no usable id."""
    if not session_id or not _SESSION_ID.fullmatch(session_id):
        return None
    session = Session(run_id=run_id, agent=agent, cli=cli, session_id=session_id)
    staging = session.path.with_name(f".{agent}.saving")
    copy_files(home, staging / "home")
    (staging / "session.json").write_text(json.dumps(asdict(session)), encoding="utf-8")
    shutil.rmtree(session.path, ignore_errors=True)
    os.replace(staging, session.path)
    return session


def load_session(run_id: str, agent: str) -> Session:
    """The kept session of ``agent`` in run ``run_id``.

    Raises:
        NotFoundError: none was kept (the leg was not kept, its CLI reported no session, or it was pruned).
    """
    path = sessions_dir() / run_id / agent / "session.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        session = Session(**raw)
    except (OSError, ValueError, TypeError) as error:
        raise NotFoundError(f"no session kept for {agent!r} in run {run_id}: only a kept leg (--keep) whose CLI "
                            "reported its session can be continued") from error
    if (session.run_id, session.agent) != (run_id, agent) or not _SESSION_ID.fullmatch(session.session_id):
        raise NotFoundError(f"the session kept for {agent!r} in run {run_id} is not readable")
    return session


def restore_home(session: Session, home: Path) -> None:
    """The kept HOME copied into the new leg's ``home`` (made fresh)."""
    copy_files(session.home, home)


def forget_session(run_id: str, agent: str | None = None) -> None:
    """Delete one leg's kept session, or (``agent`` None) every one of the run's."""
    path = sessions_dir() / run_id
    shutil.rmtree(path / agent if agent else path, ignore_errors=True)
    if agent:
        try:
            path.rmdir()
        except OSError:
            pass
