"""The bundled emulators in a process of their own, as a vendor would be, for every bench suite."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from llmmixer.servers.emulators import EmulatorClient, free_port

__all__ = ["emulator_process"]


@contextlib.contextmanager
def emulator_process(pin: bool = False, tls: bool = False) -> Iterator[EmulatorClient]:
    """The emulators in their own process (on a CPU of their own when ``pin`` and the machine has two or more);
    with ``tls``, over https from a local authority that the client and ``env`` (``SSL_CERT_FILE``) trust."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmmixer.servers.emulators", "--port", str(port),
                             "--profile", "flat", *(["--tls"] if tls else [])],
                            stdout=subprocess.PIPE if tls else subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    ca_file = None
    if tls:
        assert proc.stdout is not None
        for line in proc.stdout:  # the exports it prints first: the authority's PEM among them
            if line.startswith("export SSL_CERT_FILE="):
                ca_file = line.strip().split("=", 1)[1]
                break
        proc.stdout.close()
    ours = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pinned = pin and len(ours) >= 2
    try:
        if pinned:
            vendor_cpu = max(ours)
            os.sched_setaffinity(proc.pid, {vendor_cpu})
            os.sched_setaffinity(0, ours - {vendor_cpu})  # inherited by the adapter servers we launch
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the emulator process did not start")
            time.sleep(0.05)
        client = EmulatorClient(f"{'https' if tls else 'http'}://127.0.0.1:{port}", verify=ca_file)
        try:
            yield client
        finally:
            client.close()
    finally:
        if pinned:
            os.sched_setaffinity(0, ours)
        proc.terminate()
        proc.wait(timeout=10)
