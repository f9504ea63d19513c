"""Wire-faithful emulators of the Anthropic, OpenAI and Gemini HTTP APIs (tests, bench and ``llmmixer demo``)."""

from .app import VENDORS, EmulatorContext, base_urls, create_app
from .behaviour import Behaviour, InjectedError
from .server import EmulatorClient, EmulatorServer, free_port

__all__ = ["VENDORS", "Behaviour", "InjectedError", "EmulatorContext", "EmulatorClient", "EmulatorServer",
           "base_urls", "create_app", "free_port"]
