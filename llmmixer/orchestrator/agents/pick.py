"""``--pick best``: when several agents pass the check, a judge model ranks them instead of taking the first.

The candidates are shuffled and shown under letters (``A``, ``B``...), never under the agents' names, so the judge
weighs the work and not who did it. Each is shown with its diff, the check's output, the diff's size and the files it
touched. The judge answers through the adapters' structured output (``response_schema``): a winner, a score per
candidate, and a reason; the verdict maps the letters back to the agents. A judge that fails or answers nonsense
leaves the first passer the winner, and the verdict says why.
"""

from __future__ import annotations

import random
from typing import Any

from ...servers.core.errors import LLMMixerError
from ...servers.core.results import result_payload
from ..pool import ServerPool
from .leg import AgentLeg
from .worktree import readable

__all__ = ["PICKS", "judge_candidates", "MAX_DIFF_CHARS"]

PICKS = ("first", "best")
MAX_DIFF_CHARS = 20_000  # of each candidate's diff in the judge's prompt
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _schema(labels: list[str]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["winner", "scores", "reason"],
            "properties": {
                "winner": {"type": "string", "enum": labels},
                "scores": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["candidate", "score"],
                    "properties": {"candidate": {"type": "string", "enum": labels},
                                   "score": {"type": "number", "minimum": 0, "maximum": 10}}}},
                "reason": {"type": "string"}}}


def _prompt(task: str, check: str, shown: list[tuple[str, AgentLeg]]) -> str:
    parts = [f"Several candidate changes to a repository each pass the check. Pick the best one: correct, complete, "
             f"minimal and clean. Judge only the work shown.\n\nTask: {task}\nCheck: {check}\n"]
    for label, leg in shown:
        kept = leg.kept or {}
        diff = readable(leg.diff) or ""
        if len(diff) > MAX_DIFF_CHARS:
            diff = diff[:MAX_DIFF_CHARS] + f"\n... ({len(leg.diff or '') - MAX_DIFF_CHARS} more characters)"
        parts.append(f"\n## Candidate {label}\nFiles changed: {', '.join(kept.get('files_changed') or []) or 'none'}"
                     f"\nSize: +{kept.get('insertions', 0)} -{kept.get('deletions', 0)} lines\n"
                     f"Check output (tail):\n{((leg.check or {}).get('output_tail') or '')[-2000:]}\n"
                     f"Diff:\n{diff}\n")
    parts.append("\nAnswer with the winner's letter, a score from 0 to 10 for every candidate, and a short reason.")
    return "".join(parts)


async def judge_candidates(pool: ServerPool, judge: str, task: str, check: str, passers: list[AgentLeg],
                           rng: random.Random | None = None) -> tuple[AgentLeg, dict[str, Any]]:
    """The best of ``passers`` as ``judge`` (a model server) sees it, and the verdict (with ``labels``)."""
    order = list(passers)
    (rng or random.Random()).shuffle(order)
    shown = list(zip(_LETTERS, order))
    labels = {label: leg.name for label, leg in shown}
    verdict: dict[str, Any] = {"judge": judge, "labels": labels}
    try:
        result = await pool.call(judge, "generate", {"prompt": _prompt(task, check, shown),
                                                     "response_schema": _schema(list(labels))})
        payload = result_payload(result)
        data = payload.get("data") if not result.is_error else None
        if not isinstance(data, dict) or data.get("winner") not in labels:
            error = payload.get("error") if isinstance(payload.get("error"), dict) else None
            raise LLMMixerError((error or {}).get("message") or "the judge gave no usable verdict")
    except LLMMixerError as error:
        verdict["error"] = {"kind": error.kind.value, "message": error.message}
        verdict["winner"] = passers[0].name
        return passers[0], verdict
    scores = {labels[item["candidate"]]: item["score"] for item in data.get("scores") or ()
              if isinstance(item, dict) and item.get("candidate") in labels}
    verdict.update(winner=labels[data["winner"]], scores=scores, reason=str(data.get("reason") or ""),
                   model=payload.get("model"), cost_usd=payload.get("cost_usd"))
    return next(leg for leg in passers if leg.name == verdict["winner"]), verdict
