"""Run the emulators: in a background thread (tests, the demo) or as their own process (bench).

``EmulatorServer`` is a context manager that serves the app on 127.0.0.1 with a free port and gives a small
client for the control API. Both work the same whether the emulator runs in-process or in another process.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any, Self

import httpx2
import uvicorn

from .app import EmulatorContext, base_urls, create_app
from .tls import make_local_ca

__all__ = ["EmulatorClient", "EmulatorServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmulatorClient:
    """The control API of an emulator at ``root`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, root: str, verify: str | None = None) -> None:
        """``verify``: the PEM of the authority to trust when ``root`` is https (see :mod:`.tls`)."""
        self.root = root.rstrip("/")
        self._ca_file = verify
        context = ssl.create_default_context(cafile=verify) if verify else True
        self._http = httpx2.Client(base_url=self.root, timeout=10, verify=context)

    @property
    def env(self) -> dict[str, str]:
        """SDK base-URL variables pointing at this emulator (and, over TLS, ``SSL_CERT_FILE`` trusting it)."""
        return {**base_urls(self.root), **({"SSL_CERT_FILE": self._ca_file} if self._ca_file else {})}

    def set_behaviour(self, vendor: str, **behaviour: Any) -> None:
        self._http.put(f"/_emulator/behaviour/{vendor}", json=behaviour).raise_for_status()

    def queue(self, vendor: str, *behaviours: dict[str, Any]) -> None:
        self._http.post(f"/_emulator/queue/{vendor}", json=list(behaviours)).raise_for_status()

    def set_script(self, vendor: str, turns: list[dict[str, Any]] | None) -> None:
        """Scripted agent turns for ``vendor`` (see script.py); None removes the script."""
        body = None if turns is None else {"turns": turns}
        self._http.put(f"/_emulator/script/{vendor}", json=body).raise_for_status()

    def tool_results(self, vendor: str | None = None) -> list[dict[str, Any]]:
        params = {"vendor": vendor} if vendor else None
        response = self._http.get("/_emulator/tool_results", params=params)
        response.raise_for_status()
        return response.json()

    def requests(self, vendor: str | None = None, probes: bool = False) -> list[dict[str, Any]]:
        """The API calls the emulator saw; with ``probes``, also the requests of the base URLs themselves."""
        params = {**({"vendor": vendor} if vendor else {}), **({"probes": "1"} if probes else {})} or None
        response = self._http.get("/_emulator/requests", params=params)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._http.post("/_emulator/reset").raise_for_status()

    def close(self) -> None:
        self._http.close()


class EmulatorServer(EmulatorClient):
    """``with EmulatorServer() as emu: ...`` serves every registered vendor on a free loopback port in a thread.

    ``extra_sockets`` are listening sockets served as well, e.g. one bound on the same port inside a network
    namespace, so programs confined there reach the same emulator at the same URL.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, seed: int | None = None,
                 vendors: tuple[str, ...] | None = None, tls: bool = False,
                 extra_sockets: list[socket.socket] | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.context = EmulatorContext(seed=seed)
        # With ``tls``, https on a certificate of a new local authority; clients trust ``self.tls.ca_file``.
        self.tls = make_local_ca() if tls else None
        config = uvicorn.Config(create_app(self.context, vendors), host=host, port=self.port, log_level="critical",
                                lifespan="off", timeout_keep_alive=30,
                                ssl_certfile=self.tls.cert_file if self.tls else None,
                                ssl_keyfile=self.tls.key_file if self.tls else None)
        self._server = uvicorn.Server(config)
        sockets = None
        if extra_sockets:
            own = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.bind((host, self.port))
            own.listen(128)
            sockets = [own, *extra_sockets]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets},
                                        name="llmmixer-emulators", daemon=True)
        scheme = "https" if self.tls else "http"
        super().__init__(f"{scheme}://{host}:{self.port}", verify=str(self.tls.ca_file) if self.tls else None)

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
