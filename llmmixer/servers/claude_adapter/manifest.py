"""The Claude adapter's facts (see :mod:`llmmixer.servers.core.manifest`)."""

from ..core.manifest import EmulatorInfo, ServerManifest

MANIFEST = ServerManifest(
    name="claude",
    role="model",
    module="llmmixer.servers.claude_adapter",
    title="Claude (Anthropic)",
    script="llmmixer-claude",
    vendor="anthropic",
    key_vars=("ANTHROPIC_API_KEY",),
    base_url_var="ANTHROPIC_BASE_URL",
    # The newest model that is priced in core/prices.json and not deprecated in the SDK's model table.
    default_model="claude-haiku-4-5",
    emulator=EmulatorInfo(name="anthropic", module="llmmixer.servers.emulators.anthropic", base_path="/anthropic"),
    order=10,
)
