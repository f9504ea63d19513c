"""The GPT adapter's facts (see :mod:`llmmixer.servers.core.manifest`)."""

from ..core.manifest import EmulatorInfo, ServerManifest

MANIFEST = ServerManifest(
    name="gpt",
    role="model",
    module="llmmixer.servers.gpt_adapter",
    title="GPT (OpenAI)",
    script="llmmixer-gpt",
    vendor="openai",
    key_vars=("OPENAI_API_KEY",),
    base_url_var="OPENAI_BASE_URL",
    env_vars=("OPENAI_API_STYLE", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"),
    default_model="gpt-5-mini",
    emulator=EmulatorInfo(name="openai", module="llmmixer.servers.emulators.openai", base_path="/openai/v1"),
    order=20,
)
