"""The environment a child gets: the server's, minus everything that looks like a secret.

Matching is by name, case-insensitive, with shell-style patterns. The defaults cover the keys this project itself
reads (``ANTHROPIC_API_KEY``, ``LLMMIXER_TOKEN`` …) and the usual shapes of everyone else's; a policy file or a flag
adds more. A name that is dropped is never logged with its value.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_SECRET_PATTERNS", "SecretScrubber", "child_environment"]

DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    "*_API_KEY",
    "*_API_KEY_*",
    "API_KEY",
    "*APIKEY*",
    "*_TOKEN",
    "*_TOKEN_*",
    "TOKEN",
    "*_SECRET",
    "*_SECRET_*",
    "SECRET_*",
    "*PASSWORD*",
    "*PASSWD*",
    "*_CREDENTIALS",
    "*PRIVATE_KEY*",
    "*_ACCESS_KEY*",
    "*_SESSION_KEY",
    "*_AUTH",
    "DATABASE_URL",
    "*_DSN",
)

# What the child always gets, whatever the server had: a terminal type programs can draw on, and no shell history
# file, so arrow keys in an interactive shell cannot recall commands typed outside the runner (and its policy).
_CHILD_DEFAULTS = {"TERM": "xterm-256color", "HISTFILE": "/dev/null", "PAGER": "cat", "GIT_PAGER": "cat"}


class SecretScrubber:
    """Decides which variable names never reach a child."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(p.upper() for p in (*DEFAULT_SECRET_PATTERNS, *extra_patterns))

    def is_secret(self, name: str) -> bool:
        upper = name.upper()
        return any(fnmatch.fnmatchcase(upper, pattern) for pattern in self.patterns)

    def scrub(self, environ: Mapping[str, str]) -> dict[str, str]:
        return {name: value for name, value in environ.items() if not self.is_secret(name)}


def child_environment(environ: Mapping[str, str], scrubber: SecretScrubber, cols: int, rows: int) -> dict[str, str]:
    env = scrubber.scrub(environ)
    env.update(_CHILD_DEFAULTS)
    env["COLUMNS"], env["LINES"] = str(cols), str(rows)
    return env
