"""``python -m llmmixer.servers.emulators [--host 127.0.0.1] [--port 8900] [--seed N]``: serve the emulators."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from .app import EmulatorContext, base_urls, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmmixer.servers.emulators",
                                     description="Wire-faithful fake Anthropic, OpenAI and Gemini APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    for name, url in base_urls(f"http://{args.host}:{args.port}").items():
        print(f"export {name}={url}", file=sys.stderr)
    uvicorn.run(create_app(EmulatorContext(seed=args.seed)), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
