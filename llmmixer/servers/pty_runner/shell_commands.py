# pyright: reportAttributeAccessIssue=false
# (bashlex builds its AST nodes with attributes that depend on their kind; it ships no types for them)
"""Every simple command a shell command line would run, found with a real shell parser (bashlex).

:func:`analyze` walks the whole parse tree: lists, pipelines, subshells, groups, loops, functions, ``$(...)``,
backticks, process substitutions and assignments. Strings that a shell runs as code are parsed in turn (``eval``,
``sh -c``/``bash -c``, ``trap``, ``alias`` values, ``su -c``, ``watch``, here-strings fed to a shell), and
programs started through wrappers (``env``, ``sudo``, ``xargs``, ``find -exec``, ``nice``, ``timeout``, ``nohup``,
``command``, ``exec``, ``stdbuf`` and more) are unwrapped, so both the wrapper and the program it runs are reported.

Programs are named by basename after quote and escape removal: ``\\rm``, ``r''m`` and ``/bin/rm`` are all ``rm``.
What cannot be known without running the command is reported as *unresolved* rather than guessed: a program name
built from a variable or a substitution, a glob or brace in a program name, a shell reading commands from a pipe,
a wrapper whose options are not understood. A wrapper whose options are not understood also yields *candidate*
commands (every suffix of its arguments that could be the program), which a policy checks against its deny and ask
rules only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import bashlex
    import bashlex.ast
    import bashlex.errors

__all__ = ["Word", "SimpleCommand", "Analysis", "analyze", "SHELLS", "is_comment_only"]

MAX_DEPTH = 8  # nested strings (eval "sh -c '...'") deeper than this are not followed: unresolved
MAX_CANDIDATE_ARGS = 64

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash", "posh", "yash", "fish", "csh",
                    "tcsh", "busybox"})
_GLOB_CHARS = frozenset("*?[{")
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})


@dataclass(frozen=True, slots=True)
class Word:
    """One shell word after quote removal; ``dynamic`` when its value is only known at run time."""

    text: str
    dynamic: bool = False

    @property
    def has_glob(self) -> bool:
        return any(ch in _GLOB_CHARS for ch in self.text)


DYNAMIC = Word("<runtime>", dynamic=True)  # an argument some other program supplies (xargs, find -exec)


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    program: str | None  # basename; None when unresolved
    args: tuple[Word, ...]
    via: tuple[str, ...] = ()  # the wrappers and strings it was found through, outermost first
    unresolved: str | None = None  # why the program cannot be known statically
    candidate: bool = False  # one reading of a wrapper whose options were not understood
    shown: str | None = None  # the source text of an unresolved command

    @property
    def text(self) -> str:
        words = [self.shown or self.program or "?", *(w.text for w in self.args)]
        shown = " ".join(words)
        return f"{shown} (via {' > '.join(self.via)})" if self.via else shown


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    op: str
    target: Word


@dataclass(slots=True)
class Analysis:
    commands: list[SimpleCommand] = field(default_factory=list)
    writes: list[RedirectTarget] = field(default_factory=list)
    error: str | None = None  # the parser could not read the command line
    reads_stdin: bool = False  # a top-level shell reads its commands from the runner's input

    def unresolved(self) -> list[SimpleCommand]:
        return [c for c in self.commands if c.unresolved]


def is_comment_only(source: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in source.splitlines())


def _load_parser() -> None:
    """Bind the module name ``bashlex`` on first use: its parser tables cost a server's start-up more than half a
    second, and a server that never checks a command against a rule never needs them."""
    global bashlex
    import bashlex.ast
    import bashlex.errors  # noqa: F401 - bound as bashlex.errors


def analyze(source: str) -> Analysis:
    """All simple commands of ``source`` (a bash command line or script). Never raises."""
    if "bashlex" not in globals():
        _load_parser()
    analysis = Analysis()
    _Walker(analysis).source(source, via=(), depth=0, candidate=False, top=True)
    return analysis


# ---------------------------------------------------------------------------------------------------------------
# What a wrapper does with its arguments


@dataclass(frozen=True, slots=True)
class _Exec:
    words: tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class _Script:
    text: Word


@dataclass(frozen=True, slots=True)
class _ReadsStdin:
    pass


@dataclass(frozen=True, slots=True)
class _Unknown:
    reason: str


# What a wrapper runs: one program, a script, stdin, nothing resolvable, several of those (``find -exec``), or none.
_Inner = Union[_Exec, _Script, _ReadsStdin, _Unknown, "_Many", None]


@dataclass(frozen=True, slots=True)
class _Options:
    """A wrapper's option syntax: which short/long options take a value."""

    short_arg: str = ""
    short_flags: str = ""
    long_arg: frozenset[str] = frozenset()
    long_flags: frozenset[str] = frozenset()
    numeric_flags: bool = False  # nice -10


def _skip_options(args: Sequence[Word], spec: _Options) -> int | None:
    """Index of the first non-option word, or None when an option is not understood."""
    i = 0
    while i < len(args):
        word = args[i]
        if word.dynamic:
            return None
        text = word.text
        if text == "--":
            return i + 1
        if not text.startswith("-") or text == "-":
            return i
        if text.startswith("--"):
            name, has_value, _ = text.partition("=")
            if name in spec.long_arg:
                i += 1 if has_value else 2
                continue
            if name in spec.long_flags:
                i += 1
                continue
            return None
        if spec.numeric_flags and text[1:].isdigit():
            i += 1
            continue
        letters = text[1:]
        for pos, letter in enumerate(letters):
            if letter in spec.short_arg:
                i += 1 if pos < len(letters) - 1 else 2  # attached value (-n5) or the next word
                break
            if letter not in spec.short_flags:
                return None
        else:
            i += 1
    return i


def _assignments_end(args: Sequence[Word], start: int) -> int:
    i = start
    while i < len(args) and not args[i].dynamic and "=" in args[i].text and not args[i].text.startswith("="):
        i += 1
    return i


def _after(spec: _Options, *, positional: int = 0, assignments: bool = False,
           no_command: _Inner = None) -> Callable[[Sequence[Word]], _Inner]:
    """A wrapper that runs ``options [positional...] [NAME=VALUE...] program args``."""

    def handler(args: Sequence[Word]) -> _Inner:
        i = _skip_options(args, spec)
        if i is None:
            return _Unknown("options not understood")
        i += positional
        if assignments:
            i = _assignments_end(args, i)
        rest = tuple(args[i:])
        return _Exec(rest) if rest else no_command

    return handler


def _shell(args: Sequence[Word]) -> _Inner:
    i, run_string, from_stdin = 0, False, False
    while i < len(args):
        word = args[i]
        if word.dynamic:
            return _Unknown("shell options built at run time")
        text = word.text
        if text in ("--", "-"):
            i += 1
            break
        if text.startswith("--"):
            i += 2 if text in ("--rcfile", "--init-file") else 1
            continue
        if text[:1] in "-+" and len(text) > 1:
            flags = text[1:]
            run_string |= "c" in flags
            from_stdin |= "s" in flags
            i += 1 + flags.count("o") + flags.count("O")
            continue
        break
    rest = args[i:]
    if run_string:
        return _Script(rest[0]) if rest else _Unknown("-c without a command string")
    if from_stdin or not rest:
        return _ReadsStdin()
    return None  # runs a script file: its contents are not ours to read


def _eval(args: Sequence[Word]) -> _Inner:
    if not args:
        return None
    if any(w.dynamic for w in args):
        return _Script(DYNAMIC)
    return _Script(Word(" ".join(w.text for w in args)))


def _env(args: Sequence[Word]) -> _Inner:
    spec = _Options(short_arg="uCS", short_flags="i0v", long_arg=frozenset({"--unset", "--chdir", "--split-string"}),
                    long_flags=frozenset({"--ignore-environment", "--null", "--debug"}))
    for i, word in enumerate(args):  # -S 'program args' is a string env splits into words
        if word.text in ("-S", "--split-string") and i + 1 < len(args):
            return _Script(Word(" ".join(w.text for w in args[i + 1:]), any(w.dynamic for w in args[i + 1:])))
        if word.text.startswith("-S") and len(word.text) > 2 and not word.text.startswith("--"):
            return _Script(Word(word.text[2:] + " " + " ".join(w.text for w in args[i + 1:]), word.dynamic))
        if not word.text.startswith("-"):
            break
    return _after(spec, assignments=True)(args)


def _sudo(args: Sequence[Word]) -> _Inner:
    spec = _Options(short_arg="ugCDprtTUh", short_flags="AbEHiKklnPSsVv",
                    long_arg=frozenset({"--user", "--group", "--close-from", "--chdir", "--prompt", "--role",
                                        "--type", "--command-timeout", "--other-user", "--host"}),
                    long_flags=frozenset({"--askpass", "--background", "--preserve-env", "--set-home", "--login",
                                          "--remove-timestamp", "--reset-timestamp", "--list", "--non-interactive",
                                          "--preserve-groups", "--stdin", "--shell", "--validate"}))
    return _after(spec, assignments=True, no_command=_ReadsStdin())(args)


def _xargs(args: Sequence[Word]) -> _Inner:
    spec = _Options(short_arg="adEILnPs", short_flags="0oprtxeil",
                    long_arg=frozenset({"--arg-file", "--delimiter", "--eof", "--replace", "--max-lines",
                                        "--max-args", "--max-procs", "--max-chars", "--process-slot-var"}),
                    long_flags=frozenset({"--null", "--open-tty", "--interactive", "--no-run-if-empty", "--verbose",
                                          "--exit", "--show-limits"}))
    i = _skip_options(args, spec)
    if i is None:
        return _Unknown("xargs options not understood")
    rest = tuple(args[i:]) or (Word("echo"),)
    # Arguments come from the input at run time: the placeholder makes `xargs sh -c` unresolvable.
    return _Exec((*_placeholders(rest), DYNAMIC))


def _placeholders(words: Sequence[Word]) -> tuple[Word, ...]:
    return tuple(DYNAMIC if "{}" in w.text or "%" in w.text else w for w in words)


def _find(args: Sequence[Word]) -> _Inner:
    runs: list[_Inner] = []
    i = 0
    while i < len(args):
        if args[i].text in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(args) and args[j].text not in (";", "+"):
                j += 1
            runs.append(_Exec(_placeholders(args[i + 1:j])))
            i = j
        i += 1
    return _Many(tuple(runs)) if runs else None


@dataclass(frozen=True, slots=True)
class _Many:
    runs: tuple[_Inner, ...]


def _string_option(*names: str, shell_if_missing: bool = True) -> Callable[[Sequence[Word]], _Inner]:
    """``su -c 'cmd'``, ``script -c 'cmd'``: the value of one option is a command string."""

    def handler(args: Sequence[Word]) -> _Inner:
        for i, word in enumerate(args):
            for name in names:
                if word.text == name and i + 1 < len(args):
                    return _Script(args[i + 1])
                if name.startswith("--") and word.text.startswith(name + "="):
                    return _Script(Word(word.text.split("=", 1)[1], word.dynamic))
        return _ReadsStdin() if shell_if_missing else None

    return handler


def _flock(args: Sequence[Word]) -> _Inner:
    spec = _Options(short_arg="wE", short_flags="sxunoFv", long_arg=frozenset({"--timeout", "--conflict-exit-code"}),
                    long_flags=frozenset({"--shared", "--exclusive", "--unlock", "--nonblock", "--close",
                                          "--no-fork", "--verbose"}))
    i = _skip_options(args, spec)
    if i is None:
        return _Unknown("flock options not understood")
    rest = args[i + 1:]  # after the lock file
    if rest and rest[0].text in ("-c", "--command"):
        return _Script(rest[1]) if len(rest) > 1 else None
    return _Exec(tuple(rest)) if rest else None


def _watch(args: Sequence[Word]) -> _Inner:
    spec = _Options(short_arg="nq", short_flags="bdegtxcpwr",
                    long_arg=frozenset({"--interval", "--differences", "--equexit"}),
                    long_flags=frozenset({"--beep", "--errexit", "--chgexit", "--no-title", "--exec", "--color",
                                          "--precise", "--no-wrap", "--no-rerun"}))
    i = _skip_options(args, spec)
    if i is None:
        return _Unknown("watch options not understood")
    rest = args[i:]
    if not rest:
        return None
    if any(w.text in ("-x", "--exec") for w in args[:i]):
        return _Exec(tuple(rest))
    return _Script(Word(" ".join(w.text for w in rest), any(w.dynamic for w in rest)))


def _command(args: Sequence[Word]) -> _Inner:
    i = 0
    while i < len(args) and args[i].text.startswith("-") and args[i].text != "--":
        if "v" in args[i].text or "V" in args[i].text:
            return None  # command -v only looks the name up
        i += 1
    if i < len(args) and args[i].text == "--":
        i += 1
    return _Exec(tuple(args[i:])) if i < len(args) else None


def _trap(args: Sequence[Word]) -> _Inner:
    if len(args) >= 2 and not args[0].text.startswith("-"):
        return _Script(args[0])
    return None


def _alias(args: Sequence[Word]) -> _Inner:
    scripts = tuple(_Script(Word(w.text.split("=", 1)[1], w.dynamic)) for w in args if "=" in w.text)
    return _Many(scripts) if scripts else None


def _always_unknown(reason: str) -> Callable[[Sequence[Word]], _Inner]:
    return lambda args: _Unknown(reason)


_NO_OPTIONS = _Options()
WRAPPERS: dict[str, Callable[[Sequence[Word]], _Inner]] = {
    **{name: _shell for name in SHELLS - {"busybox"}},
    "busybox": lambda args: _Exec(tuple(args)) if args else None,
    "toybox": lambda args: _Exec(tuple(args)) if args else None,
    "eval": _eval,
    "env": _env,
    "sudo": _sudo,
    "doas": _after(_Options(short_arg="uC", short_flags="nsL"), no_command=_ReadsStdin()),
    "xargs": _xargs,
    "find": _find,
    "nice": _after(_Options(short_arg="n", long_arg=frozenset({"--adjustment"}), numeric_flags=True)),
    "nohup": _after(_NO_OPTIONS),
    "timeout": _after(_Options(short_arg="sk", short_flags="v", long_arg=frozenset({"--signal", "--kill-after"}),
                               long_flags=frozenset({"--foreground", "--preserve-status", "--verbose"})),
                      positional=1),
    "stdbuf": _after(_Options(short_arg="ioe", long_arg=frozenset({"--input", "--output", "--error"}))),
    "command": _command,
    "builtin": lambda args: _Exec(tuple(args)) if args else None,
    "exec": _after(_Options(short_arg="a", short_flags="cl")),
    "time": _after(_Options(short_arg="fo", short_flags="pvqa",
                            long_arg=frozenset({"--format", "--output"}),
                            long_flags=frozenset({"--append", "--portability", "--verbose", "--quiet"}))),
    "setsid": _after(_Options(short_flags="cfw", long_flags=frozenset({"--ctty", "--fork", "--wait"}))),
    "ionice": _after(_Options(short_arg="cn", short_flags="t", long_arg=frozenset({"--class", "--classdata"}),
                              long_flags=frozenset({"--ignore"}))),
    "taskset": _after(_Options(short_flags="ac", long_flags=frozenset({"--all-tasks", "--cpu-list"})),
                      positional=1),
    "chroot": _after(_Options(long_arg=frozenset({"--userspec", "--groups"}),
                              long_flags=frozenset({"--skip-chdir"})), positional=1, no_command=_ReadsStdin()),
    "unbuffer": _after(_Options(short_flags="p")),
    "flock": _flock,
    "watch": _watch,
    "su": _string_option("-c", "--command"),
    "runuser": _string_option("-c", "--command"),
    "script": _string_option("-c", "--command"),
    "trap": _trap,
    "alias": _alias,
    # History re-execution and tools with open-ended option syntax: never resolved statically.
    "fc": _always_unknown("fc re-runs commands from history"),
    "chrt": _always_unknown("chrt options not understood"),
    "strace": _always_unknown("strace options not understood"),
    "ltrace": _always_unknown("ltrace options not understood"),
    "parallel": _always_unknown("parallel builds commands at run time"),
    "unshare": _always_unknown("unshare options not understood"),
    "nsenter": _always_unknown("nsenter options not understood"),
    "firejail": _always_unknown("firejail options not understood"),
    "bwrap": _always_unknown("bwrap options not understood"),
    "systemd-run": _always_unknown("systemd-run options not understood"),
}


# ---------------------------------------------------------------------------------------------------------------
# The walk


def _node_children(node: bashlex.ast.node) -> Iterator[bashlex.ast.node]:
    for attr in ("parts", "list"):
        for child in getattr(node, attr, None) or ():
            if isinstance(child, bashlex.ast.node):
                yield child
    for attr in ("command", "output"):
        child = getattr(node, attr, None)
        if isinstance(child, bashlex.ast.node):
            yield child


def _is_dynamic(node: bashlex.ast.node) -> bool:
    return any(getattr(part, "kind", "") != "tilde" for part in getattr(node, "parts", None) or ())


class _Walker:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    def _emit(self, command: SimpleCommand) -> None:
        self.analysis.commands.append(command)

    def _unresolved(self, reason: str, via: tuple[str, ...], candidate: bool, shown: str | None = None) -> None:
        self._emit(SimpleCommand(program=None, args=(), via=via, unresolved=reason, candidate=candidate,
                                 shown=shown or (via[-1] if via else "?")))

    def source(self, source: str, *, via: tuple[str, ...], depth: int, candidate: bool, top: bool = False,
               stdin_piped: bool = False) -> None:
        if depth > MAX_DEPTH:
            self._unresolved("command strings nested too deeply", via, candidate)
            return
        if not source.strip() or is_comment_only(source):
            return
        try:
            trees = bashlex.parse(source)
        except (bashlex.errors.ParsingError, NotImplementedError, AttributeError, IndexError, TypeError,
                ValueError, AssertionError, RecursionError) as exc:
            message = f"the shell parser cannot read {source[:200]!r}: {exc}"
            if top and depth == 0:
                self.analysis.error = message
            else:
                self._unresolved(message, via, candidate)
            return
        for tree in trees:
            self.node(tree, via=via, depth=depth, candidate=candidate, piped=stdin_piped, top=top)

    def node(self, node: bashlex.ast.node, *, via: tuple[str, ...], depth: int, candidate: bool, piped: bool,
             top: bool) -> None:
        kind = node.kind
        if kind == "command":
            self.command(node, via=via, depth=depth, candidate=candidate, piped=piped, top=top)
            return
        if kind == "pipeline":
            elements = [part for part in node.parts if part.kind not in ("pipe", "reservedword")]
            for index, part in enumerate(elements):
                self.node(part, via=via, depth=depth, candidate=candidate, piped=piped or index > 0,
                          top=top and index == 0)
            return
        if kind in ("commandsubstitution", "processsubstitution"):
            self.node(node.command, via=via, depth=depth, candidate=candidate, piped=piped, top=False)
            return
        if kind == "parameter":
            value = str(getattr(node, "value", ""))
            if any(marker in value for marker in ("$(", "`", "<(", ">(")):
                self._unresolved(f"a command substitution inside ${{{value}}}", via, candidate)
            return
        if kind == "heredoc":
            value = str(getattr(node, "value", ""))
            if "$(" in value or "`" in value:
                self._unresolved("a command substitution inside a here-document", via, candidate)
            return
        if kind == "redirect":
            self.redirect(node, via=via, depth=depth, candidate=candidate)
            return
        for child in _node_children(node):
            self.node(child, via=via, depth=depth, candidate=candidate, piped=piped, top=top)
        heredoc = getattr(node, "heredoc", None)
        if isinstance(heredoc, bashlex.ast.node):
            self.node(heredoc, via=via, depth=depth, candidate=candidate, piped=piped, top=top)

    def redirect(self, node: bashlex.ast.node, *, via: tuple[str, ...], depth: int, candidate: bool) -> None:
        target = getattr(node, "output", None)
        if isinstance(target, bashlex.ast.node):
            if node.type in _WRITE_REDIRECTS:
                self.analysis.writes.append(RedirectTarget(node.type, Word(target.word, _is_dynamic(target))))
            self.node(target, via=via, depth=depth, candidate=candidate, piped=False, top=False)
        heredoc = getattr(node, "heredoc", None)
        if isinstance(heredoc, bashlex.ast.node):
            self.node(heredoc, via=via, depth=depth, candidate=candidate, piped=False, top=False)

    def command(self, node: bashlex.ast.node, *, via: tuple[str, ...], depth: int, candidate: bool, piped: bool,
                top: bool) -> None:
        words: list[Word] = []
        redirects: list[bashlex.ast.node] = []
        for part in node.parts:
            if part.kind == "word":
                words.append(Word(part.word, _is_dynamic(part)))
            elif part.kind == "redirect":
                redirects.append(part)
            # Substitutions anywhere in the command (words, assignments, redirect targets) run too.
            if part.kind == "redirect":
                self.redirect(part, via=via, depth=depth, candidate=candidate)
            else:
                for child in _node_children(part):
                    self.node(child, via=via, depth=depth, candidate=candidate, piped=piped, top=False)
        stdin = _StdinSource.of(redirects, piped=piped)
        self.invocation(tuple(words), via=via, depth=depth, candidate=candidate, stdin=stdin, top=top)

    def invocation(self, words: tuple[Word, ...], *, via: tuple[str, ...], depth: int, candidate: bool,
                   stdin: _StdinSource, top: bool) -> None:
        if not words:
            return
        head = words[0]
        if head.dynamic or head.has_glob:
            self._unresolved(f"the program name {head.text!r} is only known at run time", via, candidate,
                             shown=" ".join(w.text for w in words))
            return
        program = os.path.basename(head.text.rstrip("/")) or head.text
        args = words[1:]
        self._emit(SimpleCommand(program=program, args=args, via=via, candidate=candidate))
        handler = WRAPPERS.get(program)
        if handler is None:
            return
        label = f"{program} {args[0].text}" if program in SHELLS and args else program
        self.inner(handler(args), args, via=(*via, label), depth=depth, candidate=candidate, stdin=stdin, top=top)

    def inner(self, inner: _Inner | _Many, args: Sequence[Word], *, via: tuple[str, ...], depth: int,
              candidate: bool, stdin: _StdinSource, top: bool) -> None:
        if inner is None:
            return
        if isinstance(inner, _Many):
            for run in inner.runs:
                self.inner(run, args, via=via, depth=depth, candidate=candidate, stdin=stdin, top=top)
        elif isinstance(inner, _Exec):
            self.invocation(inner.words, via=via, depth=depth, candidate=candidate, stdin=stdin, top=top)
        elif isinstance(inner, _Script):
            if inner.text.dynamic:
                self._unresolved("a command string built at run time", via, candidate)
            else:
                self.source(inner.text.text, via=via, depth=depth + 1, candidate=candidate)
        elif isinstance(inner, _ReadsStdin):
            self.stdin_commands(stdin, via=via, depth=depth, candidate=candidate, top=top)
        elif isinstance(inner, _Unknown):
            self._unresolved(f"{via[-1] if via else 'a wrapper'}: {inner.reason}", via, candidate)
            self.candidates(args, via=via, depth=depth, stdin=stdin)

    def stdin_commands(self, stdin: _StdinSource, *, via: tuple[str, ...], depth: int, candidate: bool,
                       top: bool) -> None:
        """A shell that reads its commands from its standard input."""
        if stdin.text is not None:
            self.source(stdin.text, via=(*via, "stdin"), depth=depth + 1, candidate=candidate)
        elif stdin.piped:
            self._unresolved("a shell reading commands from a pipe", via, candidate)
        elif stdin.from_file:
            return  # like running a script file
        elif top and depth == 0:
            self.analysis.reads_stdin = True
        else:
            self._unresolved("a shell reading commands from its input", via, candidate)

    def candidates(self, args: Sequence[Word], *, via: tuple[str, ...], depth: int, stdin: _StdinSource) -> None:
        """Every later word that could be the program a not-understood wrapper runs."""
        for index, word in enumerate(args[:MAX_CANDIDATE_ARGS]):
            if word.dynamic or word.text.startswith("-"):
                continue
            self.invocation(tuple(args[index:]), via=via, depth=depth + 1, candidate=True, stdin=stdin, top=False)


@dataclass(frozen=True, slots=True)
class _StdinSource:
    piped: bool = False
    from_file: bool = False
    text: str | None = None  # a here-string or here-document: the commands themselves

    @classmethod
    def of(cls, redirects: Sequence[bashlex.ast.node], *, piped: bool) -> _StdinSource:
        source = cls(piped=piped)
        for redirect in redirects:
            target = getattr(redirect, "output", None)
            if redirect.type == "<<<" and isinstance(target, bashlex.ast.node):
                source = cls(text=None if _is_dynamic(target) else target.word, piped=_is_dynamic(target))
            elif redirect.type in ("<<", "<<-"):
                heredoc = getattr(redirect, "heredoc", None)
                body = str(getattr(heredoc, "value", ""))
                source = cls(text=body.rsplit("\n", 1)[0] if "\n" in body else "")
            elif redirect.type == "<" and isinstance(target, bashlex.ast.node):
                dynamic_input = _is_dynamic(target)  # < <(producer) is a pipe in disguise
                source = cls(piped=dynamic_input, from_file=not dynamic_input)
        return source
