"""``python -m llmmixer``: the ``llmmixer`` command."""

from llmmixer.orchestrator.cli import main

if __name__ == "__main__":
    main()
