"""Latency profiles: how fast each emulated vendor answers when nobody scripted a behaviour.

``realistic`` gives each vendor its own time to first token, jitter, speed and a slow tail (a few requests wait
seconds), and plausible typed answers (a judge's verdict with scores and a reason), so a race has a real winner and
is worth watching. ``flat`` answers at once, always the same way: what tests need for determinism. The figures are
of the order public latency dashboards show for each vendor's small default model; they are not measurements.
"""

from __future__ import annotations

from typing import Any

from .behaviour import Behaviour

__all__ = ["PROFILES", "DEFAULT_PROFILE", "profile_behaviours"]

DEFAULT_PROFILE = "realistic"

_REALISTIC: dict[str, dict[str, Any]] = {
    "anthropic": {"ttft_ms": 620, "ttft_jitter_ms": 180, "inter_token_ms": 14, "slow_fraction": 0.08,
                  "slow_ttft_ms": 2400,
                  "reply": "Here is a short answer. Racing models is about latency as much as quality: the first "
                           "complete answer wins, and the others are cancelled so they stop costing money."},
    "openai": {"ttft_ms": 820, "ttft_jitter_ms": 260, "inter_token_ms": 11, "slow_fraction": 0.1,
               "slow_ttft_ms": 3100,
               "reply": "Sure. Each model streams its answer as it writes it; LLMMixer shows them side by side, "
                        "keeps the winner, and closes the losers' connections the moment the race is decided."},
    "gemini": {"ttft_ms": 480, "ttft_jitter_ms": 220, "inter_token_ms": 8, "slow_fraction": 0.12,
               "slow_ttft_ms": 2800,
               "reply": "In brief: asking several models at once trades a little extra spend for a faster and more "
                        "reliable answer, and a judge or a synthesizer can combine what they said."},
}
_GENERIC: dict[str, Any] = {"ttft_ms": 700, "ttft_jitter_ms": 200, "inter_token_ms": 12, "slow_fraction": 0.1,
                            "slow_ttft_ms": 2500}

PROFILES = ("realistic", "flat")


def profile_behaviours(profile: str, vendors: list[str]) -> dict[str, Behaviour]:
    """The default behaviour of each emulated vendor under ``profile``.

    Raises:
        ValueError: an unknown profile.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    if profile == "flat":
        return {vendor: Behaviour() for vendor in vendors}
    return {vendor: Behaviour(**_REALISTIC.get(vendor, _GENERIC), plausible=True) for vendor in vendors}
