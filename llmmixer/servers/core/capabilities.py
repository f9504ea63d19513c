"""What a model accepts, so an adapter never sends a parameter the vendor would refuse.

Each adapter keeps one table (its ``capabilities.py``): ``(model-id prefix, ModelCaps)`` rows, the longest
matching prefix wins, and a model matching no row gets the table's default. :func:`fit` applies a model's row to a
request before the vendor payload is built: a refused parameter is cleared and named in the result's ``dropped``
list (``{"param", "reason"}``), so a fan-out that sets ``temperature`` for every vendor still runs on reasoning
models, and the caller can see what did not apply. Images are never dropped: a model that cannot see them is an
``invalid_input`` error, since an answer to a question about an image that was never sent is worse than none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from .errors import InvalidInputError

if TYPE_CHECKING:
    from .adapter import GenerateRequest

__all__ = ["Reasoning", "REASONING_LEVELS", "ModelCaps", "CapabilityTable", "Dropped", "fit"]

# The image formats every vendor takes (PNG, JPEG, GIF, WebP; see images.py).
MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
Reasoning = Literal["off", "low", "medium", "high"]
REASONING_LEVELS: tuple[Reasoning, ...] = ("off", "low", "medium", "high")


@dataclass(frozen=True, slots=True)
class ModelCaps:
    temperature: bool = True
    reasoning: bool = False  # the model has a reasoning control
    reasoning_off: bool = True  # ... and it can be turned off
    images: bool = True
    image_types: tuple[str, ...] = MEDIA_TYPES
    note: str = ""  # why, quoted in ``dropped`` reasons


class Dropped(BaseModel, frozen=True):
    """A parameter the model refuses, left out of the vendor request, and why (``generate``'s ``dropped``)."""

    param: str
    reason: str


class CapabilityTable:
    def __init__(self, rows: Sequence[tuple[str, ModelCaps]], default: ModelCaps) -> None:
        self.rows = sorted(rows, key=lambda row: len(row[0]), reverse=True)
        self.default = default

    def for_model(self, model: str) -> ModelCaps:
        name = model.removeprefix("models/")
        return next((caps for prefix, caps in self.rows if name.startswith(prefix)), self.default)


def fit(request: GenerateRequest, model: str, caps: ModelCaps, vendor: str) -> tuple[GenerateRequest, list[Dropped]]:
    """``request`` without what ``model`` refuses, and what was dropped.

    Raises:
        InvalidInputError: images for a model that takes none, or in a format it refuses.
    """
    dropped: list[Dropped] = []
    update: dict[str, object] = {}
    why = f" ({caps.note})" if caps.note else ""
    if request.temperature is not None and not caps.temperature:
        dropped.append(Dropped(param="temperature", reason=f"{model} does not accept temperature{why}"))
        update["temperature"] = None
    if request.reasoning is not None:
        if not caps.reasoning and request.reasoning != "off":
            dropped.append(Dropped(param="reasoning", reason=f"{model} has no reasoning control{why}"))
            update["reasoning"] = None
        elif not caps.reasoning:
            update["reasoning"] = None  # "off" on a model that never reasons: already so
        elif request.reasoning == "off" and not caps.reasoning_off:
            dropped.append(Dropped(param="reasoning", reason=f"{model} cannot turn reasoning off; it reasons at its default"))
            update["reasoning"] = None
    for index, image in enumerate(request.loaded_images()):
        if not caps.images:
            raise InvalidInputError(f"{model} does not take images", vendor=vendor)
        if image.media_type is not None and image.media_type not in caps.image_types:
            raise InvalidInputError(f"images[{index}]: {model} does not take {image.media_type} "
                                    f"(it takes {', '.join(caps.image_types)})", vendor=vendor)
    return (request.model_copy(update=update) if update else request), dropped
