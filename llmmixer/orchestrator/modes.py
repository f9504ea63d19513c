"""The mixing modes, defined once.

:data:`MODE_HELP` is the one list: the CLI's ``--mode`` help, the HTTP API's and the MCP ``ask`` tool's input
schemas, the MCP tool description, the config validation and the dashboard's mode picker (through ``/api/meta``)
all derive from it (``ModeName`` in :mod:`.config` is the pydantic form; this module stays import-light for the
CLI's ``--help``); ``tests/test_one_list.py`` fails when a copy appears anywhere else. Adding a mode is one line
here plus its strategy, a class registered with ``@register("<mode>")`` (:mod:`.strategies`).
"""

from __future__ import annotations

from ..servers.core.errors import InvalidInputError

__all__ = ["AGENT_MODES", "DEFAULT_MODE", "MODES", "MODE_HELP", "SKIPPING_MODES", "COMBINING_MODES", "check_mode", "described_modes", "modes_help"]

# mode -> what it does, for people (help text, tool descriptions, the dashboard). The first is the default.
MODE_HELP: dict[str, str] = {
    "race": "first complete answer wins; the rest are cancelled",
    "all": "every model to the end: compare answers",
    "first-token": "keep the first model that starts streaming: lowest latency",
    "hedge": "start one model, add the next only if it is slow: low cost, steady latency",
    "fallback": "one at a time, the next only if one fails",
    "synthesize": "every model answers, then an aggregator writes one answer from all of them: best quality, "
                  "highest cost",
    "judge": "every model answers, a judge picks the best (answers shuffled and anonymised)",
}
MODES: tuple[str, ...] = tuple(MODE_HELP)
DEFAULT_MODE = MODES[0]
# Modes that skip a cooling server while another leg exists (``all`` asks every server: comparing them is its point).
SKIPPING_MODES = frozenset(MODES) - {"all"}
# Modes that combine the answers (orchestrator/moa.py); their strategies take requests.MixOptions.
COMBINING_MODES = frozenset({"synthesize", "judge"})
# Coding-agent runs (orchestrator/agents) take two of them: the first agent whose check passes wins, or every agent
# to the end.
AGENT_MODES: tuple[str, ...] = ("race", "all")


def check_mode(mode: str) -> str:
    """``mode`` itself when it is a mode.

    Raises:
        InvalidInputError: any other value, naming the modes there are.
    """
    if mode not in MODE_HELP:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def modes_help(separator: str = " | ") -> str:
    """``race | all | ...`` for a flag's help."""
    return separator.join(MODES)


def described_modes() -> str:
    """``race (first complete answer wins ...), all (...)``: for a tool description."""
    return ", ".join(f"{mode} ({text})" for mode, text in MODE_HELP.items())
