"""The PTY command runner: an MCP server that runs shell commands in a real pseudo-terminal.

Modules, one concept each: ``backend`` (PTY or pipe children), ``env`` (secret-free child environment), ``output``
(bounded buffer, text forms), ``run`` (one command to completion), ``sessions`` (one interactive session),
``waiting`` (input-wait detection), ``keyboard`` (named keys, the typed line), ``shell_commands`` (every simple
command of a command line, via bashlex), ``policy`` (deny/allow/ask rules), ``runner`` (owns every child),
``server`` (the MCP tools), ``__main__`` (the ``llmmixer-pty`` console script).
"""
