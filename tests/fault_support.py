"""Real faults for the event-store tests: a redis-server of our own that we kill and restart (never the shared
one on 6379), small tmpfs mounts that fill up or turn read-only, and an ext4 file system on a loop device that
``fsfreeze`` freezes (every write to it blocks in the kernel until it is thawed)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmmixer.servers.emulators.server import free_port

__all__ = ["OwnRedis", "own_redis", "tmpfs", "fill", "remount", "FrozenDisk", "freezable_disk"]

REDIS_SERVER = shutil.which("redis-server")


class OwnRedis:
    """A redis-server on a free port that persists every write (AOF, fsync always), so a restart keeps what it
    acknowledged, as a production Redis would."""

    def __init__(self, directory: Path) -> None:
        if REDIS_SERVER is None:
            pytest.skip("needs redis-server")
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, connections die mid-command."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def shutdown(self) -> None:
        """SHUTDOWN: Redis closes every client connection and exits."""
        import redis

        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(port=self.port).shutdown()
            self.proc.wait(10)


@contextlib.contextmanager
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def tmpfs(size: str = "1m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at /tmp/stores-XXXX, unmounted afterwards (skips where mounting is refused)."""
    mount_point = Path(tempfile.mkdtemp(prefix="stores-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
        with contextlib.suppress(OSError):
            mount_point.rmdir()


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError:
            pass
        try:
            while True:  # the last few bytes
                handle.write(b"\0")
                handle.flush()
        except OSError:
            pass
    return filler


def remount(mount_point: Path, mode: str) -> None:
    """``mode``: ``ro`` or ``rw``."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True, capture_output=True)
    os.sync()


class FrozenDisk:
    """A mounted ext4 loop device: :meth:`freeze` and :meth:`thaw` it (``fsfreeze``)."""

    def __init__(self, mount_point: Path) -> None:
        self.path = mount_point
        self.frozen = False

    def freeze(self) -> None:
        subprocess.run(["fsfreeze", "--freeze", str(self.path)], check=True, capture_output=True)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            subprocess.run(["fsfreeze", "--unfreeze", str(self.path)], check=True, capture_output=True)
            self.frozen = False


@contextlib.contextmanager
def freezable_disk(size_mb: int = 64) -> Iterator[FrozenDisk]:
    """A fresh ext4 image loop-mounted at /tmp/frozen-XXXX (skips where loop mounts or fsfreeze are refused); thawed
    and unmounted afterwards, whatever the test did (a process still writing to a frozen disk would never end)."""
    if shutil.which("fsfreeze") is None or shutil.which("mkfs.ext4") is None:
        pytest.skip("needs fsfreeze and mkfs.ext4")
    work = Path(tempfile.mkdtemp(prefix="frozen-"))
    image, mount_point = work / "disk.img", work / "mnt"
    mount_point.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(size_mb << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    mounted = made.returncode == 0 and subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)],
                                                      capture_output=True, text=True).returncode == 0
    if not mounted:
        shutil.rmtree(work, ignore_errors=True)
        pytest.skip(f"cannot loop-mount an ext4 image here: {made.stderr.strip()}")
    disk = FrozenDisk(mount_point)
    try:
        yield disk
    finally:
        disk.frozen = True  # thaw even when a freeze failed halfway
        with contextlib.suppress(subprocess.CalledProcessError):
            disk.thaw()
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
