"""``llmmixer agent show|apply|prune``: the legs an agent run kept (agents/candidates.py), read from the repository.
(``agent continue``, which runs agents, is with ``agent run`` in cli.py.)

``llmmixer agent TASK --check CMD`` itself stays the way to start a run: :class:`AgentGroup` sends any first word
that is not one of these subcommands to ``run``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

__all__ = ["AgentGroup", "agent_app"]


class AgentGroup(TyperGroup):
    """``agent TASK ...`` is ``agent run TASK ...``; ``agent show|apply|prune ...`` are the subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


agent_app = typer.Typer(cls=AgentGroup, no_args_is_help=True, rich_markup_mode=None,
                        help="Race coding agents on a task (llmmixer agent TASK --check CMD), then review, apply, "
                             "continue or prune the legs they kept (show, apply, continue, prune).")

CwdOpt = Annotated[str, typer.Option("--cwd", help="the repository (default: this directory)")]


def _repo(cwd: str) -> Any:
    from ..servers.core.errors import LLMMixerError
    from .agents.worktree import repo_root

    try:
        return repo_root(cwd)
    except LLMMixerError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error


def _fail(error: Any) -> typer.Exit:
    typer.echo(f"error: {error.kind.value}: {error.message}", err=True)
    return typer.Exit(1)


@agent_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="the agent run's id")],
    agent: Annotated[str | None, typer.Argument(help="one leg: print its diff")] = None,
    cwd: CwdOpt = ".",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A kept leg's diff; without AGENT, the run's kept legs and what each changed."""
    from ..servers.core.errors import LLMMixerError
    from .agents.candidates import kept_branches, leg_diff

    repo = _repo(cwd)
    try:
        if agent is not None:
            # As bytes: a file that is not UTF-8 comes out as it is in the branch (git's output, surrogate-escaped).
            typer.echo(leg_diff(repo, run_id, agent).encode("utf-8", "surrogateescape"), nl=False)
            return
        kept = kept_branches(repo, run_id)
    except LLMMixerError as error:
        raise _fail(error) from error
    if as_json:
        typer.echo(json.dumps(kept, indent=2))
        return
    if not kept:
        typer.echo(f"no legs kept for run {run_id} (llmmixer agent --keep keeps them)")
    for leg in kept:
        typer.echo(f"{leg['agent']:<14} {leg['branch']}  {leg['commit'][:12]}")


@agent_app.command("apply")
def apply(
    run_id: Annotated[str, typer.Argument(help="the agent run's id")],
    agent: Annotated[str, typer.Argument(help="the leg to apply")],
    checkout: Annotated[bool, typer.Option("--checkout", help="check out its branch instead of applying its "
                                                              "diff to this tree")] = False,
    cwd: CwdOpt = ".",
) -> None:
    """Apply a kept leg to this tree (a three-way merge of its diff), or check out its branch; conflicts are named."""
    from ..servers.core.errors import LLMMixerError
    from .agents.candidates import apply_leg

    repo = _repo(cwd)
    try:
        outcome = apply_leg(repo, run_id, agent, checkout=checkout)
    except LLMMixerError as error:
        raise _fail(error) from error
    if outcome["conflicts"]:
        typer.echo(f"applied {outcome['branch']} with conflicts in: {', '.join(outcome['conflicts'])} "
                   f"(resolve them, then git add)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{'checked out' if checkout else 'applied'} {outcome['branch']}")


@agent_app.command("prune")
def prune(
    run_id: Annotated[str | None, typer.Argument(help="only this run's legs")] = None,
    older_than: Annotated[float | None, typer.Option("--older-than", help="only legs older than this many "
                                                                          "days")] = None,
    cwd: CwdOpt = ".",
) -> None:
    """Delete kept legs' branches: one run's, those older than N days, or all."""
    from .agents.candidates import prune_branches

    gone = prune_branches(_repo(cwd), run_id=run_id, older_than_s=None if older_than is None else older_than * 86400)
    typer.echo(f"pruned {len(gone)} branch{'es' if len(gone) != 1 else ''}")
    for branch in gone:
        typer.echo(f"  {branch}")
