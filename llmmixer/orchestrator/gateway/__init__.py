"""The gateway: the vendors' own APIs on ``llmmixer serve``, with every mixing mode as a virtual model.

One module per dialect (:mod:`.openai`, :mod:`.anthropic`, :mod:`.gemini`), what they share (:mod:`.wire`), one
call from request to answer (:mod:`.calls`) and the virtual-model names (:mod:`.models`). Every call is an
ordinary run: in the run log and on the dashboard, with its legs, winner, usage and cost.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    """Every dialect's routes (Anthropic's before OpenAI's ``/v1/models``, which hands Anthropic callers over)."""
    from . import anthropic, gemini, openai

    return [*anthropic.routes(), *openai.routes(), *gemini.routes()]
