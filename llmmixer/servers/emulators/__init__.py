"""Wire-faithful emulators of the Anthropic, OpenAI and Gemini HTTP APIs (tests, bench and ``llmmixer demo``)."""

from .app import EmulatorContext, vendors, base_urls, create_app
from .behaviour import Behaviour, InjectedError
from .server import EmulatorClient, EmulatorServer, free_port

__all__ = ["vendors", "Behaviour", "InjectedError", "EmulatorContext", "EmulatorClient", "EmulatorServer",
           "base_urls", "create_app", "free_port"]
