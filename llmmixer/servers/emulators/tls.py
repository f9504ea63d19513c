"""TLS for the emulators: a throwaway local certificate authority (``trustme``) and a server certificate for
127.0.0.1 / localhost / ::1, so a bench or a test pays a real TLS handshake on every new connection.

Clients trust it the documented way: ``SSL_CERT_FILE=<ca.pem>`` (httpx2, which every vendor SDK here uses, reads it
when it builds its default SSL context). ``trustme`` is a test/bench dependency, imported only when TLS is asked for.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalCA", "make_local_ca"]


@dataclass(frozen=True)
class LocalCA:
    ca_file: Path  # PEM of the authority: what clients trust (SSL_CERT_FILE)
    cert_file: Path  # the server's certificate chain (PEM)
    key_file: Path  # the server's private key (PEM)

    @property
    def client_env(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.ca_file)}


def make_local_ca(directory: str | Path | None = None) -> LocalCA:
    """A new authority and a loopback server certificate, written as PEM files into ``directory`` (a new temporary
    directory when omitted)."""
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - the test and bench extras install it
        raise SystemExit("TLS emulators need trustme: pip install -e '.[test]'") from exc
    folder = Path(directory or tempfile.mkdtemp(prefix="llmmixer-emulator-tls-"))
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost", "::1")
    local = LocalCA(ca_file=folder / "ca.pem", cert_file=folder / "server.pem", key_file=folder / "server.key")
    ca.cert_pem.write_to_path(str(local.ca_file))
    server.private_key_pem.write_to_path(str(local.key_file))
    with local.cert_file.open("wb") as handle:
        for blob in server.cert_chain_pems:
            handle.write(blob.bytes())
    return local
