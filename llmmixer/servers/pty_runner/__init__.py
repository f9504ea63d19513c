"""The PTY command runner: an MCP server that runs shell commands in a real pseudo-terminal.

Modules, one concept each: ``backend`` (PTY or pipe children), ``env`` (secret-free child environment), ``output``
(bounded buffer, text forms), ``run`` (one command to completion), ``sessions`` (one interactive session),
``waiting`` (input-wait detection), ``keyboard`` (named keys, the typed line), ``shell_commands`` (every simple
command of a command line, via bashlex), ``policy`` (deny/allow/ask rules), ``runner`` (owns every child),
``server`` (the MCP tools), ``__main__`` (the ``llmmixer-pty`` console script).

Containment (issue 11): ``sandbox`` (bubblewrap, one jail per child), ``guards`` + ``guard.c`` (the refusing and
asking program bound over every binary a rule names), ``control`` (the socket the guards talk to), ``exec_rules``
(what a guard is answered), ``git_args`` (git's global options and aliases), ``secrets`` (the environment allowlist,
``[secrets]``, redaction), ``containment`` (all of it for one child). See :mod:`.sandbox` for the interface other
callers use: ``writable``, ``env`` and ``secrets`` per call.
"""
