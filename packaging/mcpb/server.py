"""The bundle's entry point: ``llmmixer mcp`` (the orchestrator) over stdio, as Claude Desktop launches it."""

import sys

from llmmixer.orchestrator.mcp_server import main

if __name__ == "__main__":
    sys.exit(main(["--max-wait-s", "45", *sys.argv[1:]]))
