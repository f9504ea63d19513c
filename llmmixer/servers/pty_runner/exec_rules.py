"""Policy rules at exec time: which guard goes over which program, and what an ``ask`` guard is answered.

- A ``deny`` rule naming a whole program (``rm``) puts a ``refuse`` guard over it and its family, unless an
  ``allow`` rule with arguments carves out an exception for that program (then it gets an ``ask`` guard and the
  exception is decided per call).
- A rule with arguments (``git push --force``) or any ``ask`` rule puts an ``ask`` guard over the program: each
  exec asks the runner, which applies the same rules to the argv as it will run (for ``git``, after
  :func:`.git_args.effective_git`).
- An ``ask`` verdict passes when the host approved that rule for this command before it started (the approval asked
  at parse time), or when the host can be asked now (``asker``; only legacy MCP connections allow a question in the
  middle of a call). Otherwise it is refused, and the message says to run the command plainly so the host can be
  asked first.
- ``default = "deny"`` / ``"ask"`` is a parse-time rule only: there is no guard over programs no rule names.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from .control import Decision, GuardRequest
from .git_args import MAX_ALIAS_DEPTH, effective_git
from .guards import GuardMode, exec_only
from .policy import UNRESOLVED_RULE, Policy, strictest

__all__ = ["ExecRules", "Asker", "Approvals"]

Asker = Callable[[str], Awaitable[bool]]


@dataclass(slots=True)
class Approvals:
    """The ``ask`` rules the host approved for one command (or the last line typed into a session)."""

    rules: set[str] = field(default_factory=set)

    def replace(self, rules: Iterable[str]) -> None:
        self.rules = set(rules)


def _allow(real: str) -> Decision:
    """An approval: the guard is handed an exec-only copy of the program (:func:`.guards.exec_only`)."""
    return Decision(True, real=exec_only(real))


@dataclass(slots=True)
class ExecRules:
    policy: Policy
    guarded: dict[str, str] = field(default_factory=dict)  # guarded host path -> program

    def orders(self) -> list[tuple[GuardMode, str, str]]:
        """(mode, program, rule) for every program a rule names."""
        by_program: dict[str, list[str]] = {}
        for rule in self.policy.rules:
            by_program.setdefault(rule.program, [])
        result: list[tuple[GuardMode, str, str]] = []
        for program in by_program:
            rules = [r for r in self.policy.rules if r.program == program]
            bare_deny = next((r for r in rules if r.action == "deny" and not r.args), None)
            exceptions = [r for r in rules if r.action == "allow" and r.args]
            if bare_deny is not None and not exceptions:
                result.append(("refuse", program, str(bare_deny)))
            elif any(r.args for r in rules if r.action != "allow") or any(r.action == "ask" for r in rules) \
                    or bare_deny is not None:
                result.append(("ask", program, ", ".join(str(r) for r in rules if r.action != "allow")))
        return result

    def candidates(self, request: GuardRequest, host_path: Callable[[str], str]) -> list[tuple[str, ...]] | None:
        """Every command line the exec could amount to (a git alias read from the child's files may be open).

        A ``!`` alias's shell runs inside the sandbox, where each program it runs meets the guards again: it adds
        no candidate of its own. None: aliases nested too deep to follow (refused).
        """
        argv = request.argv or (request.program,)
        if request.program == "git":
            commands = effective_git(argv, cwd=request.cwd, env=request.env, host_path=host_path)
            if any(c.unresolved for c in commands):
                return None
            return [c.words for c in commands if c.shell_alias is None]
        return [(request.program, *argv[1:])]

    async def decide(self, request: GuardRequest, *, approvals: Approvals, asker: Asker | None,
                     host_path: Callable[[str], str]) -> Decision:
        real = request.exe if request.exe in self.guarded else None
        if real is None or not os.path.exists(real):
            return Decision(False, f"llmmixer: {request.program} refused: {request.exe!r} is not a guarded program")
        candidates = self.candidates(request, host_path)
        if candidates is None:
            return Decision(False, f"llmmixer: {request.program} refused: its aliases nest deeper than "
                                   f"{MAX_ALIAS_DEPTH} levels", rule=UNRESOLVED_RULE)
        if not candidates:
            return _allow(real)
        verdicts = [(self.policy.check_argv(words, cwd=host_path(request.cwd)), words) for words in candidates]
        verdict = strictest(v for v, _ in verdicts) or verdicts[0][0]
        shown = " ".join(next(words for v, words in verdicts if v.action == verdict.action))
        if verdict.action == "allow":
            return _allow(real)
        if verdict.action == "deny":
            rule = verdict.rule or "default: deny"
            return Decision(False, f"llmmixer: {shown} refused by policy rule {rule}", rule=rule)
        asked = set(verdict.asks) or {verdict.rule or "default: ask"}
        if asked <= approvals.rules:
            return _allow(real)
        if asker is not None and await asker(f"The command policy asks before running this ({', '.join(sorted(asked))})"
                                             f":\n\n{shown}\n\nRun it?"):
            return _allow(real)
        rules = ", ".join(sorted(asked))
        return Decision(False, f"llmmixer: {shown} refused: policy rule {rules} needs the host's approval, which can "
                               f"only be asked before a command starts; run `{shown}` as a command of its own",
                        rule=rules)
