"""LLMMixer: Claude, GPT and Gemini as MCP servers, an orchestrator that races them, and a live dashboard."""

__version__ = "0.1.0"
