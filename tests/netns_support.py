"""A network namespace with nothing but loopback, for tests of outside programs (the coding CLIs), and a recorder of
every attempt to leave it.

Inside the namespace every IPv4 address is routed to loopback (``ip route add local 0.0.0.0/0 dev lo``), so a
program that tries to reach the outside does not just fail: its DNS query lands on our resolver (named in the
namespace's own ``/etc/netns/NAME/resolv.conf``, which ``ip netns exec`` mounts over ``/etc/resolv.conf``) and its
connection to port 80 or 443 of any address lands on our listener. Both are recorded and answered with a refusal
(NXDOMAIN, a closed connection). :meth:`LoopbackNetns.escapes` lists them; a test asserts it is empty.

Sockets are created inside the namespace from a short-lived thread that joins it with ``setns(2)``; the socket
stays in the namespace after the thread is gone, so this process can serve the emulators there (see
``EmulatorServer(extra_sockets=...)``) while its own control client stays outside.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["LoopbackNetns", "netns_available"]

CLONE_NEWNET = 0x40000000
RESOLVER = "192.0.2.53"  # TEST-NET-1: never a real resolver
T = TypeVar("T")


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _dns_name(packet: bytes) -> str:
    """The first question's name of a DNS query ("?" when it cannot be read)."""
    labels, index = [], 12
    try:
        while packet[index]:
            length = packet[index]
            labels.append(packet[index + 1:index + 1 + length].decode("ascii", "replace"))
            index += 1 + length
    except IndexError:
        return "?"
    return ".".join(labels)


def _nxdomain(query: bytes) -> bytes:
    if len(query) < 12:
        return b""
    flags = (0x8000 | (query[2] & 0x01) << 8 | 0x0080 | 0x0003).to_bytes(2, "big")  # QR, RD copied, RA, NXDOMAIN
    return query[:2] + flags + query[4:6] + b"\0\0\0\0\0\0" + query[12:]


class LoopbackNetns:
    """``with LoopbackNetns("agents-x") as ns: subprocess.run([*ns.exec_prefix, "claude", ...])``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/var/run/netns/{name}"
        self._etc = f"/etc/netns/{name}"
        self._attempts: list[str] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def __enter__(self) -> LoopbackNetns:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        self._ip("netns", "add", self.name)
        try:
            self._ip("-n", self.name, "link", "set", "lo", "up")
            self._ip("-n", self.name, "route", "add", "local", "0.0.0.0/0", "dev", "lo")
            os.makedirs(self._etc, exist_ok=True)
            with open(f"{self._etc}/resolv.conf", "w") as handle:
                handle.write(f"nameserver {RESOLVER}\noptions timeout:1 attempts:1\n")
            self._start_recorder()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        shutil.rmtree(self._etc, ignore_errors=True)

    # -- sockets inside -------------------------------------------------------------------------------------------
    def inside(self, make: Callable[[], T]) -> T:
        """Run ``make`` on a thread that has joined the namespace; return what it returns."""
        box: dict[str, object] = {}
        libc = ctypes.CDLL(None, use_errno=True)

        def target() -> None:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
                box["value"] = make()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            finally:
                os.close(fd)

        thread = threading.Thread(target=target, name=f"setns-{self.name}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    def listener(self, port: int, host: str = "127.0.0.1") -> socket.socket:
        """A listening TCP socket on ``host:port`` inside the namespace."""
        def make() -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            return sock

        return self.inside(make)

    # -- the recorder ---------------------------------------------------------------------------------------------
    def escapes(self) -> list[str]:
        """Every attempt to leave loopback so far: ``dns NAME`` or ``tcp ADDRESS:PORT``."""
        with self._lock:
            return list(self._attempts)

    def clear(self) -> None:
        with self._lock:
            self._attempts.clear()

    def _note(self, what: str) -> None:
        with self._lock:
            self._attempts.append(what)

    def _start_recorder(self) -> None:
        def make_udp() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", 53))
            return sock

        udp = self.inside(make_udp)
        self._sockets.append(udp)
        threading.Thread(target=self._serve_dns, args=(udp,), daemon=True).start()
        for port in (80, 443):
            tcp = self.listener(port, "0.0.0.0")
            self._sockets.append(tcp)
            threading.Thread(target=self._serve_tcp, args=(tcp,), daemon=True).start()

    def _serve_dns(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = sock.recvfrom(4096)
            except OSError:
                return
            name = _dns_name(packet)
            if name.rstrip(".") not in ("localhost",):
                self._note(f"dns {name}")
            try:
                sock.sendto(_nxdomain(packet), peer)
            except OSError:
                pass

    def _serve_tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _peer = sock.accept()
            except OSError:
                return
            address, port = conn.getsockname()[:2]
            if not address.startswith("127."):
                self._note(f"tcp {address}:{port}")
            conn.close()
