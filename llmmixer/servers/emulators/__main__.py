"""``python -m llmmixer.servers.emulators [--host 127.0.0.1] [--port 8900] [--seed N] [--tls]``: serve the emulators."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from .app import EmulatorContext, base_urls, create_app
from .tls import make_local_ca


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmmixer.servers.emulators",
                                     description="Wire-faithful fake Anthropic, OpenAI and Gemini APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tls", action="store_true",
                        help="serve https with a certificate of a new local authority (printed as SSL_CERT_FILE)")
    args = parser.parse_args(argv)
    local = make_local_ca() if args.tls else None
    scheme = "https" if local else "http"
    env = {**base_urls(f"{scheme}://{args.host}:{args.port}"), **(local.client_env if local else {})}
    for name, value in env.items():
        print(f"export {name}={value}", file=sys.stderr, flush=True)
    uvicorn.run(create_app(EmulatorContext(seed=args.seed)), host=args.host, port=args.port, log_level="warning",
                ssl_certfile=local.cert_file if local else None, ssl_keyfile=local.key_file if local else None)


if __name__ == "__main__":
    main()
