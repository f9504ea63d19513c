"""The PTY command runner's facts (see :mod:`llmmixer.servers.core.manifest`)."""

from ..core.manifest import ServerManifest

MANIFEST = ServerManifest(
    name="pty",
    role="runner",
    module="llmmixer.servers.pty_runner",
    title="PTY command runner",
    script="llmmixer-pty",
    env_vars=("LLMMIXER_PTY_POLICY", "LLMMIXER_PTY_BACKEND", "LLMMIXER_PTY_ROOTS", "LLMMIXER_AGENTS_DIR"),
    order=90,
)
