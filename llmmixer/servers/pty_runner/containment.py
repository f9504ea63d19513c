"""Everything between "run this command" and the exec of bwrap: sandbox, guards, environment, secrets, redaction.

:class:`Containment` is owned by the runner and configured from the policy (:meth:`Containment.use_policy`); each
child gets a :class:`Prepared` (:meth:`Containment.prepare`): its argv (``bwrap ... -- bash -c CMD`` with the sandbox
on), its environment (the allowlist, then the call's ``env``, then the secrets), its redactor (the runner's secrets
and the call's), and, inside the sandbox, its private directories and control socket.

The guards are built on first use (the first sandboxed child), so a server that never runs anything never needs a
compiler. With ``mode = "auto"`` a machine without one still gets the sandbox, without exec-time rules, and says so
in ``sandbox``; with ``mode = "on"`` it is an error naming the package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from ..core.errors import InvalidInputError, UnavailableError
from ..core.redact import inline_secrets
from .control import Control, Decision, GuardRequest
from .exec_rules import Approvals, Asker, ExecRules
from .guards import guards_for, search_dirs
from .policy import Policy
from .roots import Roots
from .sandbox import SANDBOX_ENV, Jail, Sandbox, SandboxSettings, remove_stale_jails, resolve_sandbox
from .secrets import EnvPolicy, Redactor, parent_environment

__all__ = ["Containment", "Prepared"]

log = logging.getLogger("llmmixer.pty.containment")

_NAME_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _check_env(kind: str, items: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (items or {}).items():
        if not name or not set(name) <= _NAME_OK or name[0].isdigit() or not isinstance(value, str) \
                or "\x00" in value:
            raise InvalidInputError(f"{kind} {name!r}: names are letters, digits and _; values are text")
        out[name] = value
    return out


@dataclass(slots=True)
class Prepared:
    argv: list[str]
    env: dict[str, str]
    redactor: Redactor
    jail: Jail | None = None
    control: Control | None = None
    approvals: Approvals = field(default_factory=Approvals)

    async def start_control(self, tg: anyio.abc.TaskGroup) -> None:
        if self.control is not None:
            await self.control.open()
            tg.start_soon(self.control.serve)

    async def aclose(self) -> None:
        if self.control is not None:
            await self.control.aclose()
        if self.jail is not None:
            self.jail.remove()


class Containment:
    def __init__(self, *, mode: str | None = None, env_policy: EnvPolicy | None = None,
                 environ: Mapping[str, str] | None = None, protect: Sequence[str] = (),
                 secrets: Mapping[str, str] | None = None) -> None:
        self.requested = (mode or os.environ.get(SANDBOX_ENV) or "auto").strip().lower()
        self.environ: Mapping[str, str] = environ if environ is not None else os.environ
        self.base_env_policy = env_policy or EnvPolicy()
        self.env_policy = self.base_env_policy
        self.protect = tuple(protect)
        self.policy = Policy.permissive()
        self.settings = SandboxSettings()
        self.secrets: dict[str, str] = dict(secrets or {})
        self.redactor = Redactor()
        self._dropped_known = False
        self.enabled, self.info = resolve_sandbox(self.requested)
        self._sandbox: Sandbox | None = None
        self.exec_rules: ExecRules | None = None
        self.guard_problem: str | None = None
        self._refresh_redactor()

    # -- configuration ---------------------------------------------------------------------------------------
    def use_policy(self, policy: Policy) -> None:
        """Raises: UnavailableError (the policy says ``mode = "on"`` and there is no sandbox), InvalidInputError
        (a secret's source cannot be read)."""
        self.policy = policy
        self.settings = policy.sandbox
        if policy.sandbox.mode != "auto" and not os.environ.get(SANDBOX_ENV):
            if self.requested == "auto":  # the flag (or variable) beats the file; the file beats the default
                self.requested = policy.sandbox.mode
                self.enabled, self.info = resolve_sandbox(self.requested)
        self.env_policy = EnvPolicy(pass_env=(*self.base_env_policy.pass_env, *policy.sandbox.pass_env),
                                    never=self.base_env_policy.never)
        for source in policy.secrets:
            self.secrets[source.name] = source.read(self.environ)
        self._sandbox = None
        self._refresh_redactor()

    def _refresh_redactor(self) -> None:
        redactor = Redactor()
        redactor.extend(self.secrets)  # first: a value is named after its [secrets] entry
        redactor.extend(self.env_policy.dropped_values(self.environ))
        redactor.extend(self.env_policy.dropped_values(parent_environment()))
        self.redactor = redactor

    @property
    def protected(self) -> tuple[str, ...]:
        paths = [*self.protect]
        if self.policy.path:
            paths.append(self.policy.path)
        return tuple(paths)

    def sandbox(self) -> Sandbox:
        """The sandbox with its guards, built on first use.

        Raises: UnavailableError when the guards cannot be built and the mode is ``on``.
        """
        if self._sandbox is None:
            exec_rules = ExecRules(self.policy)
            orders = exec_rules.orders()
            guards = []
            if orders:
                try:
                    guards = guards_for(orders, search_dirs(self.environ.get("PATH")))
                except UnavailableError as exc:
                    if self.requested == "on":
                        raise
                    self.guard_problem = exc.message
                    self.info = f"bubblewrap (no exec-time rules: {exc.message})"
                    log.warning("sandbox without exec-time rules: %s", exc.message)
            exec_rules.guarded = {g.target: g.program for g in guards if g.mode == "ask"}
            self.exec_rules = exec_rules
            self._sandbox = Sandbox(settings=self.settings, protected=self.protected, guards=guards)
            remove_stale_jails()
        return self._sandbox

    def describe(self) -> dict[str, Any]:
        return {"sandbox": self.info if self.enabled else self.info, "network": self.settings.network}

    # -- one child -------------------------------------------------------------------------------------------
    def prepare(self, argv: Sequence[str], *, cwd: str, cols: int, rows: int,
                writable: Sequence[str] = (), env: Mapping[str, str] | None = None,
                secrets: Mapping[str, str] | None = None, asker: Asker | None = None,
                approvals: Sequence[str] = (), roots: Roots | None = None) -> Prepared:
        """Raises: InvalidInputError (bad env, secrets or writable paths), UnavailableError."""
        extra = _check_env("env", env)
        call_secrets = _check_env("secret", secrets)
        all_secrets = {**self.secrets, **call_secrets}
        hidden = {**inline_secrets(" ".join(argv[2:] if argv[:2] == ["bash", "-c"] else argv)), **call_secrets}
        redactor = self.redactor.copy_with(hidden) if hidden else self.redactor
        child_env = self.env_policy.child_env(self.environ, cols, rows, secrets=all_secrets, extra=extra)
        if not self.enabled:  # everything is writable anyway
            return Prepared(argv=list(argv), env=child_env, redactor=redactor)
        sandbox = self.sandbox()
        jail = sandbox.jail(cwd, writable, roots)
        child_env["TMPDIR"] = "/tmp"
        prepared = Prepared(argv=jail.wrap(argv), env=child_env, redactor=redactor, jail=jail)
        prepared.approvals.replace(approvals)
        exec_rules = self.exec_rules
        if not sandbox.guards:
            return prepared

        async def decide(request: GuardRequest) -> Decision:
            if exec_rules is None:
                return Decision(False, "llmmixer: refused: no exec-time rules")
            return await exec_rules.decide(request, approvals=prepared.approvals, asker=asker,
                                           host_path=jail.host_path)

        prepared.control = Control(jail.control_socket, decide, identify=sandbox.orders_of_process)
        return prepared
