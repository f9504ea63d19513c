"""Image input, vendor-free: what a caller may send, and the checked image every adapter encodes natively.

A caller gives each image as one of

- ``{"path": "/abs/file.png"}``: read by whoever holds the file (the CLI reads it and sends the bytes on, so an
  adapter behind Streamable HTTP never needs the caller's filesystem);
- ``{"url": "https://..."}``: passed to the vendor as a URL (the vendor fetches it);
- ``{"data": "<base64>", "media_type": "image/png"}``.

:func:`load` turns any of them into an :class:`Image`: base64 data with a media type that matches the bytes, or a
URL. The formats are the four every vendor takes (PNG, JPEG, GIF, WebP; Gemini refuses GIF, and says so); the
bytes decide, not the file name, and a declared type that contradicts them is refused here, as the vendors do.
Each adapter then writes its own wire shape (Anthropic ``image`` blocks, OpenAI ``input_image`` / ``image_url``
parts, Gemini ``inline_data`` / ``file_data`` parts).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .capabilities import MEDIA_TYPES
from .errors import InvalidInputError

__all__ = ["ImageInput", "Image", "MEDIA_TYPES", "MAX_IMAGE_BYTES", "sniff_media_type", "load", "from_path"]

# Anthropic's per-image limit, the smallest of the three vendors'.
MAX_IMAGE_BYTES = 5 * 1024 * 1024


class ImageInput(BaseModel):
    """One image argument: exactly one of ``path``, ``url`` or ``data`` (base64, with ``media_type``)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    url: str | None = None
    data: str | None = None
    media_type: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageInput:
        given = [name for name in ("path", "url", "data") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("an image needs exactly one of path, url or data (base64 with media_type)")
        if self.data and not self.media_type:
            raise ValueError("an image given as base64 data needs its media_type, e.g. image/png")
        return self


@dataclass(frozen=True, slots=True)
class Image:
    """A checked image: base64 ``data`` with its ``media_type``, or a ``url`` (with a media type when known)."""

    media_type: str | None
    data: str | None = None
    url: str | None = None

    @property
    def data_url(self) -> str:
        """``data:<type>;base64,<data>``, or the URL itself."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"

    def raw(self) -> bytes:
        assert self.data is not None
        return base64.b64decode(self.data)


def sniff_media_type(raw: bytes) -> str | None:
    """The media type the bytes' signature says (PNG, JPEG, GIF, WebP), or None."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def _checked(raw: bytes, declared: str | None, where: str) -> Image:
    if len(raw) > MAX_IMAGE_BYTES:
        raise InvalidInputError(f"{where}: the image is {len(raw)} bytes; the limit is {MAX_IMAGE_BYTES}")
    sniffed = sniff_media_type(raw)
    if sniffed is None:
        raise InvalidInputError(f"{where}: not a PNG, JPEG, GIF or WebP image")
    if declared is not None and declared.lower() != sniffed:
        raise InvalidInputError(f"{where}: declared {declared} but the bytes are {sniffed}")
    return Image(media_type=sniffed, data=base64.b64encode(raw).decode("ascii"))


def from_path(path: str | Path, where: str = "image") -> Image:
    """Read and check an image file."""
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{where}: cannot read {file}: {exc.strerror or exc}") from exc
    return _checked(raw, None, f"{where} ({file.name})")


def load(image: ImageInput | dict[str, Any], where: str = "image") -> Image:
    """The checked :class:`Image` for one argument.

    Raises:
        InvalidInputError: unreadable file, bad base64, an unsupported format, a type that contradicts the bytes,
            a URL that is not http(s), or an image over :data:`MAX_IMAGE_BYTES`.
    """
    try:
        spec = image if isinstance(image, ImageInput) else ImageInput.model_validate(image)
    except ValidationError as exc:
        raise InvalidInputError(f"{where}: {exc.errors()[0]['msg']}") from None
    if spec.path:
        return from_path(spec.path, where)
    if spec.url:
        if not spec.url.startswith(("https://", "http://")):
            raise InvalidInputError(f"{where}: url must be http(s); give local files as path or data")
        guessed = spec.media_type or mimetypes.guess_type(spec.url.split("?", 1)[0])[0]
        return Image(media_type=guessed if guessed in MEDIA_TYPES else None, url=spec.url)
    try:
        raw = base64.b64decode(spec.data or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"{where}: data is not valid base64") from exc
    return _checked(raw, spec.media_type, where)
