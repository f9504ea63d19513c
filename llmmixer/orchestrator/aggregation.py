"""The prompts of ``synthesize`` (mixture of agents) and ``judge``, versioned.

Each prompt carries a version that goes into every result that used it (``synthesis.prompt_version``,
``verdict.prompt_version``), so a change of wording is visible in stored runs and benchmarks. Change the text ->
bump the version.

``synthesize`` follows Mixture-of-Agents (Wang et al., 2024, "Mixture-of-Agents Enhances Large Language Model
Capabilities"): the aggregator gets the user's prompt as the user turn and the proposers' answers, numbered, in
the system prompt, with the paper's Aggregate-and-Synthesize instruction (reworded only where it named
"open-source models"). With ``--rounds N`` the proposers of round k > 1 get the same prompt over round k-1's
answers; the aggregator always works on the last round.

``judge`` shows the answers under letters, in a shuffled order, with no vendor or model name, and asks for a
structured verdict (:data:`VERDICT_SCHEMA` via the vendors' native structured output) by :data:`RUBRIC`. The
shuffle and the anonymity reduce position and self-preference bias (Zheng et al., 2023, "Judging LLM-as-a-Judge").
"""

from __future__ import annotations

from typing import Any

__all__ = ["AGGREGATION_VERSION", "JUDGE_VERSION", "RUBRIC", "aggregation_system", "judge_prompt", "verdict_schema",
           "labels"]

AGGREGATION_VERSION = "moa-1"
JUDGE_VERSION = "judge-1"

_AGGREGATE = (
    "You have been provided with a set of responses from various models to the latest user query. Your task is to "
    "synthesize these responses into a single, high-quality response. It is crucial to critically evaluate the "
    "information provided in these responses, recognizing that some of it may be biased or incorrect. Your "
    "response should not simply replicate the given answers but should offer a refined, accurate, and "
    "comprehensive reply to the instruction. Ensure your response is well-structured, coherent, and adheres to the "
    "highest standards of accuracy and reliability. Answer the user directly; do not mention the responses or "
    "this instruction."
)

RUBRIC = (
    "1. Correctness: is every claim true and every step valid?\n"
    "2. Helpfulness: does it answer exactly what was asked, completely?\n"
    "3. Instructions: does it follow every instruction and constraint in the question?\n"
    "4. Clarity: is it well organised and no longer than it needs to be?"
)

_JUDGE = (
    "You are an impartial judge. Below is a user's question and {count} candidate answers labelled {labels}. "
    "Judge them only by this rubric:\n{rubric}\n\n"
    "The order of the answers is random and says nothing about their quality; their length is not a merit in "
    "itself. Score every answer from 0 to 10, pick the best one as the winner, and give a short reason that cites "
    "the rubric. Reply with the JSON object only."
)


def labels(count: int) -> list[str]:
    """``A``, ``B``, ... (``A1``... past 26 answers)."""
    letters = [chr(ord("A") + i) for i in range(min(count, 26))]
    return letters + [f"A{i}" for i in range(1, count - 25)]


def aggregation_system(answers: list[str], system: str | None = None) -> str:
    """The aggregator's (or a later round's proposers') system prompt over ``answers``."""
    numbered = "\n\n".join(f"{i}. {answer.strip()}" for i, answer in enumerate(answers, start=1))
    head = f"{system.strip()}\n\n" if system and system.strip() else ""
    return f"{head}{_AGGREGATE}\n\nResponses from models:\n\n{numbered}"


def judge_prompt(question: str, answers: list[str]) -> tuple[str, str]:
    """``(system, prompt)`` for the judge over ``answers`` (already in their shown order)."""
    names = labels(len(answers))
    system = _JUDGE.format(count=len(answers), labels=", ".join(names), rubric=RUBRIC)
    shown = "\n\n".join(f"[Answer {name}]\n{answer.strip()}\n[End of answer {name}]"
                        for name, answer in zip(names, answers))
    return system, f"[Question]\n{question.strip()}\n[End of question]\n\n{shown}"


def verdict_schema(count: int) -> dict[str, Any]:
    """``{"winner", "scores", "reason"}`` for ``count`` answers (winner one of their labels)."""
    names = labels(count)
    return {
        "title": "verdict",
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": names},
            "scores": {"type": "object", "properties": {name: {"type": "number", "minimum": 0, "maximum": 10}
                                                         for name in names},
                       "required": names, "additionalProperties": False},
            "reason": {"type": "string"},
        },
        "required": ["winner", "scores", "reason"],
        "additionalProperties": False,
    }
