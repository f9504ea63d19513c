"""Coding agents as legs: Claude Code, Codex and Gemini CLI on one task, each in its own git worktree, run through
the PTY runner; ``--check`` decides who won (see race.py)."""

from .race import AGENT_MODES, AgentRequest, AgentRun, plan_agents, run_agents
from .spec import CLIS, AgentSpec, agent_specs, find_command

__all__ = ["AGENT_MODES", "AgentRequest", "AgentRun", "AgentSpec", "CLIS", "agent_specs", "find_command",
           "plan_agents", "run_agents"]
