"""The command policy: deny / allow / ask rules from a TOML file, applied to every simple command.

```toml
[policy]
default = "allow"                  # what a command matching no rule gets: allow | deny | ask
deny  = ["rm", "shutdown", "git push --force"]
ask   = ["git push"]
allow = ["git push --dry-run"]
```

A rule is a program name and optional leading arguments. It matches a simple command (found by
:mod:`.shell_commands` anywhere in the command line) whose program, by basename, equals the rule's and whose
arguments begin with the rule's. The most specific matching rule (most words) wins; on a tie the stricter action
wins. An argument only known at run time (``$X``, ``$(...)``, a glob) counts as matching a deny or ask rule's
argument, never an allow rule's. The command line's verdict is the strictest of its simple commands.

What cannot be resolved statically — a program name built at run time, a shell reading commands from a pipe, a
command line the parser cannot read — is denied whenever a deny rule exists (otherwise it is asked about when ask
rules exist, else it gets the default).

Two more tables: ``[sandbox]`` (:class:`.sandbox.SandboxSettings`: mode, writable, network, pass_env) and
``[secrets]`` (:func:`.secrets.load_secrets`). Inside the sandbox the rules also hold at exec time
(:mod:`.exec_rules`); the parse-time check here gives the early, explained refusal.

The policy file protects itself: a command that writes to it (a redirection onto it, or naming it to a program that
is not known to only read) is refused by a built-in rule. The server also reads the file once, at start: editing it
later changes nothing until the server restarts.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.errors import InvalidInputError, PolicyError
from .sandbox import SandboxSettings
from .secrets import SecretSource, load_secrets
from .shell_commands import Analysis, SimpleCommand, Word, analyze

__all__ = ["Action", "Rule", "Verdict", "Policy", "strictest", "POLICY_ENV", "PROTECT_RULE", "UNRESOLVED_RULE",
           "PARSE_RULE"]

POLICY_ENV = "LLMMIXER_PTY_POLICY"
Action = Literal["allow", "deny", "ask"]
_SEVERITY: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}

PROTECT_RULE = "builtin: the policy file is read-only to commands"
UNRESOLVED_RULE = "builtin: unresolvable command"
PARSE_RULE = "builtin: unparsable command line"
EDITING_RULE = "builtin: line edited with keys the runner cannot follow"

# Programs that only read the files they are given: naming the policy file to them is harmless.
READ_ONLY_PROGRAMS = frozenset({
    "cat", "less", "more", "head", "tail", "grep", "egrep", "fgrep", "rg", "wc", "diff", "cmp", "stat", "ls",
    "file", "md5sum", "sha1sum", "sha256sum", "sha512sum", "b2sum", "cksum", "bat", "nl", "od", "xxd", "hexdump",
    "strings", "test", "[", "echo", "printf", "realpath", "readlink", "basename", "dirname", "du", "jq", "tomlq",
})
# Programs that copy onto their last argument: the policy file as a source is harmless.
COPY_PROGRAMS = frozenset({"cp", "install", "rsync", "scp"})
# Programs that act on whole directory trees: naming a directory that holds the policy file touches it.
TREE_PROGRAMS = frozenset({"rm", "mv", "rmdir", "unlink", "shred", "chmod", "chown", "chgrp", "chattr", "rsync",
                           "setfacl", "mount", "umount"})

# Interactive shells expand history references (`!!:s/ls/rm/`, `^ls^rm`) before running a line.
_HISTORY_EXPANSION = re.compile(r"(?:^\s*\^)|!(?=[^\s=(\"'])")


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    program: str
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, action: Action, text: str) -> Rule:
        import shlex

        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise InvalidInputError(f"policy rule {text!r} is not valid shell words: {exc}") from exc
        if not words:
            raise InvalidInputError(f"empty {action} rule in the policy")
        return cls(action=action, program=os.path.basename(words[0]) or words[0], args=tuple(words[1:]))

    @property
    def specificity(self) -> int:
        return 1 + len(self.args)

    def __str__(self) -> str:
        return f"{self.action}: {' '.join((self.program, *self.args))}"

    def matches(self, command: SimpleCommand) -> bool:
        if command.program != self.program or len(command.args) < len(self.args):
            return False
        for expected, actual in zip(self.args, command.args, strict=False):
            if actual.dynamic or actual.has_glob:
                if self.action == "allow":
                    return False  # an allow rule never vouches for what only the run decides
                continue  # might be anything at run time: a deny/ask rule assumes the worst
            if actual.text != expected:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    rule: str | None = None  # the rule that decided; None for the default
    command: str | None = None  # the simple command it decided on
    reason: str = ""
    asks: tuple[str, ...] = ()  # every ask rule that matched, for the approval prompt

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    def error(self, detail: str | None = None) -> PolicyError:
        message = detail or f"refused by policy rule `{self.rule or 'default: ' + self.action}`"
        if self.command:
            message += f" on `{self.command}`"
        if self.reason:
            message += f": {self.reason}"
        return PolicyError(message, details={"rule": self.rule, "command": self.command, "action": self.action})

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "rule": self.rule, "command": self.command, "reason": self.reason}


@dataclass(slots=True)
class Policy:
    default: Action = "allow"
    rules: list[Rule] = field(default_factory=list)
    path: str | None = None  # the policy file, protected from the commands it governs
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    secrets: tuple[SecretSource, ...] = ()

    # -- loading ---------------------------------------------------------------------------------------------
    @classmethod
    def permissive(cls) -> Policy:
        return cls()

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | None = None) -> Policy:
        tables = ("sandbox", "secrets")
        section = data.get("policy", {k: v for k, v in data.items() if k not in tables})
        if not isinstance(section, dict):
            raise InvalidInputError("the policy file needs a [policy] table")
        unknown = set(section) - {"default", "deny", "ask", "allow"}
        if unknown:
            raise InvalidInputError(f"unknown policy keys: {', '.join(sorted(unknown))}")
        default = section.get("default", "allow")
        if default not in _SEVERITY:
            raise InvalidInputError(f"policy default must be allow, deny or ask (got {default!r})")
        rules: list[Rule] = []
        for action in ("deny", "ask", "allow"):
            entries = section.get(action, [])
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise InvalidInputError(f"policy {action} must be a list of strings")
            rules += [Rule.parse(action, entry) for entry in entries]
        return cls(default=default, rules=rules, path=os.path.realpath(path) if path else None,
                   sandbox=SandboxSettings.from_table(data.get("sandbox")), secrets=load_secrets(data.get("secrets")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Raises: InvalidInputError (missing, unreadable or invalid file)."""
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise InvalidInputError(f"cannot read policy file {os.fspath(path)!r}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"policy file {os.fspath(path)!r} is not valid TOML: {exc}") from exc
        return cls.from_dict(data, path=os.fspath(path))

    @classmethod
    def from_env(cls, path: str | None = None) -> Policy:
        chosen = path or os.environ.get(POLICY_ENV)
        return cls.load(chosen) if chosen else cls.permissive()

    # -- questions -------------------------------------------------------------------------------------------
    @property
    def has_deny(self) -> bool:
        return any(r.action == "deny" for r in self.rules) or self.default == "deny"

    @property
    def is_permissive(self) -> bool:
        return not self.rules and self.default == "allow" and self.path is None

    def _fallback(self, rule: str, reason: str, command: str | None = None) -> Verdict:
        """What an unresolvable or unparsable command gets."""
        if self.has_deny:
            return Verdict("deny", rule, command, reason)
        if any(r.action == "ask" for r in self.rules) or self.default == "ask":
            return Verdict("ask", rule, command, reason, asks=(rule,))
        return Verdict(self.default, None, command, reason)

    def check(self, command_line: str, *, cwd: str | None = None, stdin: str | None = None) -> Verdict:
        """The verdict on a whole command line (and on ``stdin`` when a top-level shell reads commands from it)."""
        if self.is_permissive:
            return Verdict("allow")
        analysis = analyze(command_line)
        verdicts = list(self._verdicts(analysis, cwd))
        if analysis.reads_stdin and stdin:
            verdicts += self._verdicts(analyze(stdin), cwd)
        return strictest(verdicts) or Verdict("allow")

    def check_argv(self, words: Iterable[str], *, cwd: str | None = None) -> Verdict:
        """The verdict on one program about to be executed with exactly these words (the exec-time check)."""
        program, *args = list(words)
        command = SimpleCommand(os.path.basename(program), tuple(Word(a) for a in args))
        return strictest(self._command_verdicts(command, cwd)) or Verdict("allow")

    def check_typed_line(self, line: str, *, certain: bool, shell_reads: bool, cwd: str | None = None) -> Verdict:
        """A line typed into an interactive session, checked when it ends.

        ``certain`` is False when the line was edited with keys whose effect the runner cannot follow (tab
        completion, arrows, history). ``shell_reads`` is False when a non-shell program (a REPL) will most likely
        read the line: it is still checked for denied commands, but text a shell parser cannot read is let through.
        """
        if self.is_permissive:
            return Verdict("allow")
        if not certain:
            return self._fallback(EDITING_RULE, "tab, arrow keys, history and other line-editing keys are refused "
                                                "in a shell session while deny or ask rules are set; type the "
                                                "whole line", line)
        if shell_reads and _HISTORY_EXPANSION.search(line):
            return self._fallback(UNRESOLVED_RULE, "history expansion (! or ^) is resolved by the shell at run "
                                                   "time", line)
        analysis = analyze(line)
        if analysis.error and not shell_reads:
            analysis.error = None
            analysis.commands = [c for c in analysis.commands if not c.unresolved]
        return strictest(self._verdicts(analysis, cwd)) or Verdict("allow")

    # -- evaluation ------------------------------------------------------------------------------------------
    def _verdicts(self, analysis: Analysis, cwd: str | None) -> Iterable[Verdict]:
        if analysis.error:
            yield self._fallback(PARSE_RULE, analysis.error)
        for target in analysis.writes:
            if self._names_policy(target.target, cwd, tree=False):
                yield Verdict("deny", PROTECT_RULE, f"{target.op} {target.target.text}",
                              "the runner's policy file cannot be changed by the commands it governs")
        for command in analysis.commands:
            yield from self._command_verdicts(command, cwd)

    def _command_verdicts(self, command: SimpleCommand, cwd: str | None) -> Iterable[Verdict]:
        if command.unresolved:
            if not command.candidate:
                yield self._fallback(UNRESOLVED_RULE, command.unresolved, command.text)
            return
        if self._touches_policy(command, cwd):
            yield Verdict("deny", PROTECT_RULE, command.text,
                          "the runner's policy file cannot be changed by the commands it governs")
        matches = [rule for rule in self.rules if rule.matches(command)]
        if command.candidate:
            matches = [rule for rule in matches if rule.action != "allow"]
            if not matches:
                return
        if not matches:
            yield Verdict(self.default, None, command.text, "no rule matches" if self.default != "allow" else "",
                          asks=("default: ask",) if self.default == "ask" else ())
            return
        best = max(matches, key=lambda r: (r.specificity, _SEVERITY[r.action]))
        asks = tuple(str(r) for r in matches if r.action == "ask" and r.specificity == best.specificity)
        yield Verdict(best.action, str(best), command.text, asks=asks if best.action == "ask" else ())

    def _touches_policy(self, command: SimpleCommand, cwd: str | None) -> bool:
        if self.path is None or command.program in READ_ONLY_PROGRAMS:
            return False
        operands = [w for w in command.args if w.dynamic or not w.text.startswith("-")]
        if command.program in COPY_PROGRAMS:
            operands = operands[-1:]
        tree = command.program in TREE_PROGRAMS
        return any(self._names_policy(word, cwd, tree=tree) for word in operands) or any(
            self._names_policy(Word(w.text.split("=", 1)[1], w.dynamic), cwd, tree=False)
            for w in command.args if "=" in w.text)  # dd of=FILE, --output=FILE

    def _names_policy(self, word: Word, cwd: str | None, *, tree: bool) -> bool:
        if self.path is None or not word.text:
            return False
        name = os.path.basename(self.path)
        text = word.text
        if word.dynamic:
            return name in text
        base = os.path.basename(text.rstrip("/"))
        if word.has_glob and fnmatch.fnmatchcase(name, base):
            return True
        if not os.path.isabs(text) and not text.startswith("~") and base == name:
            return True  # relative: the command may have changed directory first
        resolved = os.path.realpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(text)))
        if resolved == self.path:
            return True
        return tree and (self.path.startswith(resolved.rstrip("/") + "/"))


def strictest(verdicts: Iterable[Verdict]) -> Verdict | None:
    best: Verdict | None = None
    asks: list[str] = []
    for verdict in verdicts:
        asks += verdict.asks
        if best is None or _SEVERITY[verdict.action] > _SEVERITY[best.action]:
            best = verdict
    if best is not None and best.action == "ask":
        return Verdict("ask", best.rule, best.command, best.reason, asks=tuple(dict.fromkeys(asks)))
    return best

