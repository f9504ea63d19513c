"""The PTY command runner's facts (see :mod:`llmmixer.servers.core.manifest`)."""

from ..core.manifest import ServerManifest

MANIFEST = ServerManifest(
    name="pty",
    role="runner",
    module="llmmixer.servers.pty_runner",
    title="PTY command runner",
    script="llmmixer-pty",
    # its roots (the agents' directory) and the directories no command may write are found where the orchestrator's
    env_vars=("LLMMIXER_PTY_POLICY", "LLMMIXER_PTY_BACKEND", "LLMMIXER_PTY_ROOTS", "LLMMIXER_AGENTS_DIR",
              "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"),
    order=90,
)
