"""``llmmixer emulators`` (also ``python -m llmmixer.servers.emulators``): serve the emulated vendor APIs and print
the ``export`` lines, dummy keys included, that point the official SDKs (and so every LLMMixer command) at them."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from typing import TextIO

from ..core.manifest import model_manifests
from .app import EmulatorContext, base_urls, create_app, vendors
from .profiles import DEFAULT_PROFILE, PROFILES, profile_behaviours

__all__ = ["main", "export_lines", "build_parser"]

DUMMY_KEY = "emulator-key-not-a-secret"


def export_lines(root: str, extra: dict[str, str] | None = None) -> list[str]:
    """``export NAME=value`` for every emulated server's base URL and (a dummy) key."""
    env = {**base_urls(root), **(extra or {})}
    for manifest in model_manifests():
        if manifest.emulator is not None and manifest.key_vars:
            env[manifest.key_vars[0]] = DUMMY_KEY
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def build_parser(prog: str = "llmmixer emulators") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Serve wire-faithful fake Anthropic, OpenAI and Gemini "
                                     "APIs on this machine and print the export lines that point the SDKs at them.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                        help="realistic: each vendor its own latency, jitter and slow tail (the default); "
                             "flat: instant and identical, for tests")
    parser.add_argument("--seed", type=int, default=None, help="seed the jitter and the slow tail")
    parser.add_argument("--tls", action="store_true",
                        help="serve https with a certificate of a new local authority (printed as SSL_CERT_FILE)")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    import uvicorn

    from .tls import make_local_ca

    out = out if out is not None else sys.stdout
    assert out is not None  # sys.stdout is None only without a console, where nobody reads the exports
    args = build_parser().parse_args(argv)
    local = make_local_ca() if args.tls else None
    scheme = "https" if local else "http"
    root = f"{scheme}://{args.host}:{args.port}"
    context = EmulatorContext(seed=args.seed)
    for vendor, behaviour in profile_behaviours(args.profile, list(vendors())).items():
        context.set_default(vendor, behaviour)
    out.write(f"# LLMMixer emulators on {root} (profile {args.profile}); paste into another shell:\n")
    out.write("\n".join(export_lines(root, local.client_env if local else None)) + "\n")
    out.write("# then try: llmmixer ask \"Why race models?\" --mode all   (Ctrl-C here stops the emulators)\n")
    out.flush()
    try:
        uvicorn.run(create_app(context), host=args.host, port=args.port, log_level="warning",
                    ssl_certfile=local.cert_file if local else None, ssl_keyfile=local.key_file if local else None)
    except KeyboardInterrupt:
        pass
    with contextlib.suppress(BrokenPipeError, ValueError):  # whoever read the exports may be gone
        out.write("emulators stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
