"""The request checks the live APIs make on images, reasoning controls and model-specific parameters.

Each vendor module calls its function before it answers; a message means a 400 with that text, in the vendor's own
error shape. What is refused here is what the live services refuse (messages copied from them where known):

- Anthropic: ``image`` blocks only (``image_url`` / ``input_image`` are other vendors' tags), ``source`` base64 with
  one of four media types that matches the bytes, or a URL; at most 5 MB. ``thinking`` ``enabled`` needs
  ``budget_tokens`` >= 1024 and below ``max_tokens``; ``adaptive`` only on 4.6 models; ``output_config.effort`` is
  one of low | medium | high | xhigh | max.
- OpenAI: ``input_image`` parts with an ``image_url`` that is a base64 image data URL or an http(s) URL
  (Responses), ``image_url`` parts with ``{"url"}`` (Chat). Reasoning models (gpt-5, o-series) refuse
  ``temperature``; other models refuse ``reasoning`` / ``reasoning_effort``; effort is one of the known levels.
- Gemini: ``inlineData`` with a supported image type (no GIF) and base64 data, or ``fileData`` with a URI.
  ``thinkingConfig`` only on models that think; 2.5 Pro refuses budget 0; budgets within the model's range.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from ..core.images import MAX_IMAGE_BYTES, sniff_media_type

__all__ = ["anthropic_problem", "openai_problem", "gemini_problem", "openai_reasoning_model"]

_ANTHROPIC_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_ANTHROPIC_BLOCKS = ("text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use",
                     "tool_result", "server_tool_use", "web_search_tool_result")
_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def _decode(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:  # Google accepts the URL-safe alphabet too
            return base64.urlsafe_b64decode(data)
        except (binascii.Error, ValueError):
            return None


# -- Anthropic ---------------------------------------------------------------------------------------------------------

def _anthropic_image(block: dict[str, Any], where: str) -> str | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return f"{where}.image.source: Field required"
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        return None if isinstance(url, str) and url.startswith(("https://", "http://")) else (
            f"{where}.image.source.url: Only HTTP(S) URLs are supported")
    if kind != "base64":
        return (f"{where}.image.source: Input tag '{kind}' found using 'type' does not match any of the expected "
                "tags: 'base64', 'file', 'url'")
    media_type = source.get("media_type")
    if media_type not in _ANTHROPIC_TYPES:
        return (f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' "
                "or 'image/webp'")
    raw = _decode(source.get("data"))
    if raw is None:
        return f"{where}.image.source.base64.data: invalid base64 data"
    if len(raw) > MAX_IMAGE_BYTES:
        return f"{where}.image.source.base64: image exceeds 5 MB maximum: {len(raw)} bytes > {MAX_IMAGE_BYTES} bytes"
    if sniff_media_type(raw) != media_type:
        return f"{where}.image.source.base64.data: Image does not match the provided media type {media_type}"
    return None


def anthropic_problem(body: dict[str, Any]) -> str | None:
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in _ANTHROPIC_BLOCKS:
                expected = ", ".join(f"'{name}'" for name in _ANTHROPIC_BLOCKS)
                return f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: " \
                       f"{expected}"
            if kind == "image" and (problem := _anthropic_image(block, where)):
                return problem
    thinking = body.get("thinking")
    model = str(body.get("model") or "")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            if not body.get("max_tokens", 0) > budget:
                return ("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
                        "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-"
                        "context-window-size")
        elif kind == "adaptive":
            if not model.startswith(("claude-opus-4-6", "claude-sonnet-4-6")):
                return f"thinking.type: adaptive thinking is not supported on {model}"
        elif kind != "disabled":
            return (f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                    "'adaptive', 'disabled', 'enabled'")
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        return "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
    return None


# -- OpenAI ------------------------------------------------------------------------------------------------------------

def openai_reasoning_model(model: str) -> bool:
    return (model.startswith(("gpt-5", "o1", "o3", "o4")) and not model.startswith("gpt-5-chat"))


def _openai_error(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def _image_url_problem(url: Any, param: str) -> dict[str, Any] | None:
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return None
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        return _openai_error(f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type (e.g. "
                             "'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value with an invalid format.",
                             param, "invalid_value")
    raw = _decode(match.group(2))
    if raw is None or sniff_media_type(raw) is None:
        return _openai_error("You uploaded an unsupported image. Please make sure your image has of one the following "
                             "formats: ['png', 'jpeg', 'gif', 'webp'].", param, "invalid_image_format")
    return None


def openai_problem(body: dict[str, Any], api: str) -> dict[str, Any] | None:
    """The error body the live API sends, or None."""
    model = str(body.get("model") or "")
    reasoning = openai_reasoning_model(model)
    if reasoning and body.get("temperature") is not None:
        return _openai_error("Unsupported parameter: 'temperature' is not supported with this model.", "temperature",
                             "unsupported_parameter")
    effort_param = "reasoning_effort" if api == "chat" else "reasoning.effort"
    effort = body.get("reasoning_effort") if api == "chat" else (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        if not reasoning:
            return _openai_error(f"Unsupported parameter: '{effort_param}' is not supported with this model.",
                                 effort_param, "unsupported_parameter")
        levels = ["none", "minimal", "low", "medium", "high"] if model.startswith("gpt-5.") else [
            "minimal", "low", "medium", "high"] if model.startswith("gpt-5") else ["low", "medium", "high"]
        if effort not in levels:
            listed = ", ".join(f"'{level}'" for level in levels)
            return _openai_error(f"Invalid value: '{effort}'. Supported values are: {listed}.", effort_param,
                                 "unsupported_value")
    turns = body.get("messages") if api == "chat" else body.get("input")
    name = "messages" if api == "chat" else "input"
    for i, turn in enumerate(turns if isinstance(turns, list) else []):
        content = turn.get("content") if isinstance(turn, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            where = f"{name}[{i}].content[{j}]"
            allowed: tuple[str, ...]
            if api == "chat":
                allowed = ("text", "image_url", "input_audio", "refusal", "audio", "file")
                if kind == "image_url":
                    problem = _image_url_problem((part.get("image_url") or {}).get("url"), f"{where}.image_url.url")
                    if problem:
                        return problem
            else:
                allowed = ("input_text", "input_image", "output_text", "refusal", "input_file",
                           "computer_screenshot", "summary_text")
                if kind == "input_image":
                    if part.get("detail", "auto") not in ("auto", "low", "high"):
                        return _openai_error(f"Invalid value: '{part.get('detail')}'. Supported values are: 'low', "
                                             "'high', and 'auto'.", f"{where}.detail", "invalid_value")
                    if part.get("file_id") is None and (problem := _image_url_problem(part.get("image_url"),
                                                                                         f"{where}.image_url")):
                        return problem
            if kind not in allowed:
                listed = ", ".join(f"'{a}'" for a in allowed)
                return _openai_error(f"Invalid value: '{kind}'. Supported values are: {listed}.", f"{where}.type",
                                     "invalid_value")
    return None


# -- Gemini ------------------------------------------------------------------------------------------------------------

_GEMINI_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
_BUDGETS = {"gemini-2.5-pro": (128, 32768), "gemini-2.5-flash-lite": (512, 24576), "gemini-2.5-flash": (1, 24576)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def gemini_problem(body: dict[str, Any], model: str) -> str | None:
    for i, content in enumerate(body.get("contents") or []):
        for j, part in enumerate((content or {}).get("parts") or []):
            where = f"contents[{i}].parts[{j}]"
            inline = part.get("inlineData") or part.get("inline_data")
            if inline is not None:
                mime = inline.get("mimeType") or inline.get("mime_type")
                if mime not in _GEMINI_TYPES:
                    return f"Unsupported MIME type: {mime}"
                raw = _decode(inline.get("data"))
                if raw is None:
                    return (f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed for "
                            f"\"{str(inline.get('data'))[:20]}\"")
                if sniff_media_type(raw) is None:
                    return "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
            file_data = part.get("fileData") or part.get("file_data")
            if file_data is not None and not (file_data.get("fileUri") or file_data.get("file_uri")):
                return f"{where}.file_data.file_uri: a file URI is required"
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or config.get("thinking_config")
    if thinking:
        # Proto JSON: the API reads lowerCamel and snake_case names alike (the SDK sends nested fields in either).
        thinking = {_camel(key): value for key, value in thinking.items()}
        name = model.removeprefix("models/")
        if not name.startswith(("gemini-2.5", "gemini-3")):
            return "Thinking is not supported for this model."
        budget = thinking.get("thinkingBudget")
        if thinking.get("thinkingLevel") is not None and not name.startswith("gemini-3"):
            return "Thinking level is not supported for this model."
        if budget is not None and budget not in (0, -1):
            low, high = next((r for prefix, r in sorted(_BUDGETS.items(), key=lambda kv: -len(kv[0]))
                              if name.startswith(prefix)), (1, 24576))
            if not low <= budget <= high:
                return f"The thinking budget {budget} is invalid. Please choose a value between {low} and {high}."
        if budget == 0 and name.startswith(("gemini-2.5-pro", "gemini-3")):
            return "Budget 0 is invalid. This model only works in thinking mode."
    return None
