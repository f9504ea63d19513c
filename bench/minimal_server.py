"""The baseline of the start-up bench: the smallest MCP stdio server the same SDK builds (one tool, nothing else)."""

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="minimal")


@server.tool()
async def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    server.run("stdio")
