"""What looks like a key, and hiding the keys typed inline into a command line.

Used by the PTY runner (its logs, errors and redaction set) and by the orchestrator (the ``run.started`` event of a
command), so both hide the same things. A value looks like a key when its variable's name says so (``*KEY*``,
``*TOKEN*``, ``*SECRET*``, ``*PASS*``, ``*PAT``, ``*_AUTH*``, ``*CREDENTIAL*``, ``*WEBHOOK*``, ``*DSN``) or when it
has a key's shape: 16+ characters with no spaces and no path or URL shape, mixing letters and digits, or a known
prefix (``sk-``, ``ghp_``, ``xox``, ``AKIA``, ``AIza``, ``glpat-``).

:func:`redact_secrets` hides known keys (an adapter's own) in a message, wherever one stands as a whole token: a
vendor may echo the key back in an error, and a one-letter key must not cut "k" out of "known".
"""

from __future__ import annotations

import json
import re

__all__ = ["looks_secret", "redact_inline", "inline_secrets", "redact_secrets", "secret_forms", "redact_url",
           "REDACTED"]

REDACTED = "[redacted]"

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASS|_PAT$|^PAT$|AUTH|CREDENTIAL|WEBHOOK|DSN$|COOKIE|SESSION",
                          re.IGNORECASE)
_KNOWN_PREFIX = re.compile(r"^(sk-|sk_|rk_|pk_|ghp_|gho_|ghs_|ghu_|github_pat_|xox[abprs]-|AKIA|ASIA|AIza|"
                           r"glpat-|ya29\.|eyJ)")
_ASSIGNMENT = re.compile(r"(?<![\w$/.-])([A-Za-z_][A-Za-z0-9_]*)=('(?:[^']*)'|\"(?:[^\"\\]|\\.)*\"|[^\s;&|<>()]+)")


def looks_secret(name: str, value: str) -> bool:
    value = value.strip("'\"")
    if len(value) < 6:
        return False
    if _KNOWN_PREFIX.match(value):
        return True
    if _SECRET_NAME.search(name) and not value.startswith(("/", "~", "./")):
        return True
    if len(value) < 16 or any(ch.isspace() for ch in value) or value.startswith(("/", "~", ".")):
        return False
    if "://" in value and "@" not in value:
        return False
    return bool(re.search(r"[A-Za-z]", value) and re.search(r"[0-9]", value))


def redact_inline(command: str) -> str:
    """``FOO=sk-abc cmd`` -> ``FOO=[redacted] cmd``, for every ``NAME=VALUE`` word that looks like a key."""

    def replace(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        return f"{name}={REDACTED}" if looks_secret(name, value) else match.group(0)

    return _ASSIGNMENT.sub(replace, command)


def inline_secrets(command: str) -> dict[str, str]:
    """The key-like values typed inline into ``command`` (``FOO=sk-abc cmd`` -> ``{"FOO": "sk-abc"}``), unquoted."""
    found: dict[str, str] = {}
    for match in _ASSIGNMENT.finditer(command):
        name, value = match.group(1), match.group(2)
        if looks_secret(name, value):
            found[name] = value[1:-1] if value[:1] in "'\"" and value[-1:] == value[:1] else value
    return found


_TOKEN_CHARS = r"A-Za-z0-9_\-"


def secret_forms(secret: str) -> list[str]:
    """The ways ``secret`` can show up in a message, longest first: as given, stripped of whitespace, and escaped
    as ``repr``, JSON or a bytes literal would print it (``sk-abc\\n`` for a key read with its newline)."""
    forms = {secret, secret.strip()}
    for form in list(forms):
        forms.update((repr(form)[1:-1], json.dumps(form)[1:-1], str(form.encode("utf-8", "backslashreplace"))[2:-1]))
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_secrets(message: str, *secrets: str | None) -> str:
    """``message`` with every whole-token occurrence of each secret (in any of its :func:`secret_forms`) replaced
    by ``[redacted]``."""
    for secret in secrets:
        if not secret:
            continue
        for form in secret_forms(secret):
            if form in message:
                message = re.sub(rf"(?<![{_TOKEN_CHARS}]){re.escape(form)}(?![{_TOKEN_CHARS}])", REDACTED, message)
    return message


def redact_url(url: str) -> str:
    """``url`` fit to show: a password in its authority and any secret-named query value (``?password=``,
    ``?token=``) replaced by ``***``. A user name and the rest stay (they say which store it is)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://***" if "://" in url else url
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, sep, _password = credentials.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"{'***' if looks_secret('USER', user) else user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_NAME.search(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
