"""The Gemini adapter's facts (see :mod:`llmmixer.servers.core.manifest`)."""

from ..core.manifest import EmulatorInfo, ServerManifest

MANIFEST = ServerManifest(
    name="gemini",
    role="model",
    module="llmmixer.servers.gemini_adapter",
    title="Gemini (Google)",
    script="llmmixer-gemini",
    vendor="google",
    telemetry_provider="gcp.gemini",
    key_vars=("GEMINI_API_KEY", "GOOGLE_API_KEY"),  # the SDK accepts either; errors name the first
    base_url_var="GOOGLE_GEMINI_BASE_URL",
    default_model="gemini-2.5-flash",
    emulator=EmulatorInfo(name="gemini", module="llmmixer.servers.emulators.gemini", base_path="/gemini"),
    order=30,
)
