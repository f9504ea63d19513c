"""The vendor facts the adapter contract suite (tests/test_adapter_contract.py) is parametrized over.

One :class:`VendorCase` per adapter configuration: the three vendors, and GPT a second time in its Chat Completions
style. Each case says how to build the adapter and what the vendor's wire looks like where the shared scenarios need
it (the emulator name, the variables, the default model and its price, the error bodies and what they map to).
Wire checks that only make sense for one vendor stay in that vendor's own test file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conftest import FAKE_KEYS

from llmmixer.servers.claude_adapter.adapter import ClaudeAdapter
from llmmixer.servers.core.adapter import AdapterSettings, BaseAdapter
from llmmixer.servers.gemini_adapter.adapter import GeminiAdapter
from llmmixer.servers.gpt_adapter.adapter import GPTAdapter

ErrorCase = tuple[dict[str, Any], str, float | None]  # (injected error, kind, retry_after_s)
MidStreamCase = tuple[dict[str, Any], str, int | None]  # (injected error, kind, status)


@dataclass(frozen=True)
class VendorCase:
    id: str
    emulator: str  # the vendor's name in the emulator's control API
    error_vendor: str  # the ``vendor`` field of its errors
    key_var: str
    base_url_var: str
    base_path: str  # the base URL's path under the emulator root
    module: str  # ``python -m`` this to run the server
    build: Callable[[AdapterSettings], BaseAdapter]
    default_model: str  # what the emulator reports for the default model
    price_per_mtok: tuple[float, float]  # (input, output) USD per million tokens of the default model
    errors: list[ErrorCase]
    mid_stream_errors: list[MidStreamCase]
    refusals: list[str]  # stop reasons the emulator can inject that must end as content_filter
    retryable: frozenset[str] = frozenset({"rate_limit", "server", "unavailable", "timeout"})
    args: tuple[str, ...] = ()  # extra server flags for this case

    @property
    def key(self) -> str:
        return FAKE_KEYS[self.key_var]

    def adapter(self, **settings: Any) -> BaseAdapter:
        return self.build(AdapterSettings(**{"backoff_base_s": 0.01, **settings}))

    def argv(self) -> list[str]:
        return ["-m", self.module, *self.args]


SPEND_LIMIT = {"type": "error", "request_id": "req_011CSpend",
               "error": {"type": "rate_limit_error", "message": "You have reached your specified API usage limits.",
                         "details": {"error_code": "enforced_spend_limit_reached"}}}

CLAUDE_ERRORS: list[ErrorCase] = [
    ({"status": 400, "type": "prompt_too_long"}, "context_length", None),
    ({"status": 400, "message": "prompt is too long: 312000 tokens > 200000 maximum"}, "context_length", None),
    ({"status": 400}, "bad_request", None),
    ({"status": 401}, "auth", None),
    ({"status": 402, "type": "billing_error"}, "quota", None),
    ({"status": 403}, "permission", None),
    ({"status": 404, "message": "model: claude-nope"}, "not_found", None),
    ({"status": 413, "type": "request_too_large"}, "bad_request", None),
    ({"status": 429, "retry_after_s": 12}, "rate_limit", 12.0),
    ({"status": 429}, "rate_limit", None),
    ({"status": 429, "headers": {"retry-after-ms": "1500", "retry-after": "2"}}, "rate_limit", 1.5),
    ({"status": 429, "body": SPEND_LIMIT}, "quota", None),
    ({"status": 500}, "server", None),
    ({"status": 502}, "server", None),
    ({"status": 503}, "unavailable", None),
    ({"status": 504}, "timeout", None),
    ({"status": 529}, "overloaded", None),
    ({"type": "overloaded_error"}, "overloaded", None),
]

GPT_ERRORS: list[ErrorCase] = [
    ({"status": 400}, "bad_request", None),
    ({"status": 400, "type": "context_length_exceeded"}, "context_length", None),
    ({"status": 400, "type": "invalid_prompt"}, "content_filter", None),
    ({"status": 401, "type": "invalid_api_key"}, "auth", None),
    ({"status": 403}, "permission", None),
    ({"status": 404, "type": "model_not_found"}, "not_found", None),
    ({"status": 429, "retry_after_s": 12}, "rate_limit", 12.0),
    ({"status": 429, "retry_after_s": 0.25}, "rate_limit", 0.25),
    ({"status": 429}, "rate_limit", 1.0),  # no retry-after: the exhausted limit's x-ratelimit-reset-tokens
    ({"status": 429, "headers": {"retry-after": "3"}}, "rate_limit", 3.0),
    ({"status": 429, "body": {"error": {"message": "slow down", "type": "requests", "param": None,
                                        "code": "rate_limit_exceeded"}}}, "rate_limit", None),
    ({"status": 429, "type": "insufficient_quota"}, "quota", None),
    ({"status": 500}, "server", None),
    ({"status": 502}, "server", None),
    ({"status": 503}, "unavailable", None),
    ({"status": 504}, "timeout", None),
]

QUOTA_ZERO = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                        "message": "Quota exceeded for metric: generate_content_free_tier_input_token_count, limit: 0",
                        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                            {"quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier", "quotaValue": "0"}]},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]}}

GEMINI_ERRORS: list[ErrorCase] = [
    ({"status": 400, "type": "API_KEY_INVALID"}, "auth", None),
    ({"status": 400, "type": "context_length_exceeded"}, "context_length", None),
    ({"status": 400}, "bad_request", None),
    ({"status": 401}, "auth", None),
    ({"status": 403}, "permission", None),
    ({"status": 404}, "not_found", None),
    ({"status": 429, "retry_after_s": 12}, "rate_limit", 12.0),
    ({"status": 429}, "rate_limit", None),
    ({"status": 429, "headers": {"retry-after": "3"}}, "rate_limit", 3.0),
    ({"status": 429, "type": "daily_quota"}, "quota", 41.0),
    ({"status": 429, "body": QUOTA_ZERO}, "quota", 30.0),
    ({"status": 500}, "server", None),
    ({"status": 502}, "server", None),
    ({"status": 503}, "unavailable", None),
    ({"status": 504}, "timeout", None),
]


def _gpt(api_style: str) -> Callable[[AdapterSettings], BaseAdapter]:
    return lambda settings: GPTAdapter(settings, api_style=api_style)


_GPT_COMMON: dict[str, Any] = dict(
    emulator="openai", error_vendor="openai", key_var="OPENAI_API_KEY", base_url_var="OPENAI_BASE_URL",
    base_path="/openai/v1", module="llmmixer.servers.gpt_adapter", default_model="gpt-5-mini-2025-08-07",
    price_per_mtok=(0.25, 2.0), errors=GPT_ERRORS, refusals=["content_filter", "refusal"],
)

CASES: list[VendorCase] = [
    VendorCase(
        id="claude", emulator="anthropic", error_vendor="anthropic", key_var="ANTHROPIC_API_KEY",
        base_url_var="ANTHROPIC_BASE_URL", base_path="/anthropic", module="llmmixer.servers.claude_adapter",
        build=ClaudeAdapter, default_model="claude-haiku-4-5", price_per_mtok=(1.0, 5.0), errors=CLAUDE_ERRORS,
        mid_stream_errors=[({"status": 529}, "overloaded", None)], refusals=["refusal"],  # an SSE error: no status
        retryable=frozenset({"rate_limit", "server", "unavailable", "timeout", "overloaded"}),
    ),
    VendorCase(
        id="gpt", build=_gpt("responses"), **_GPT_COMMON,
        mid_stream_errors=[
            ({"status": 429, "type": "rate_limit_exceeded"}, "rate_limit", None),  # event: error, nested object
            ({"status": 500}, "server", None),  # response.failed
            ({"status": 500, "body": {"code": "server_error", "message": "boom", "param": None}}, "server", None),
            ({"status": 429, "type": "insufficient_quota"}, "quota", None),
        ],
    ),
    VendorCase(
        id="gpt-chat", build=_gpt("chat"), args=("--api", "chat"), **_GPT_COMMON,
        mid_stream_errors=[
            ({"status": 500}, "server", None),  # data: {"error": ...}
            ({"status": 429, "type": "rate_limit_exceeded"}, "rate_limit", None),
        ],
    ),
    VendorCase(
        id="gemini", emulator="gemini", error_vendor="google", key_var="GEMINI_API_KEY",
        base_url_var="GOOGLE_GEMINI_BASE_URL", base_path="/gemini", module="llmmixer.servers.gemini_adapter",
        build=GeminiAdapter, default_model="gemini-2.5-flash", price_per_mtok=(0.3, 2.5), errors=GEMINI_ERRORS,
        mid_stream_errors=[({"status": 503}, "unavailable", 503)],
        refusals=["SAFETY", "RECITATION", "prompt:SAFETY", "prompt:PROHIBITED_CONTENT"],
    ),
]
CASE_IDS = [case.id for case in CASES]


def cases_with(attribute: str) -> list[Any]:
    """``pytest.param(case, item)`` for every item of ``case.<attribute>``, over every case."""
    import json

    import pytest

    return [pytest.param(case, item, id=f"{case.id}-{json.dumps(item)[:48]}")
            for case in CASES for item in getattr(case, attribute)]


__all__ = ["CASES", "CASE_IDS", "VendorCase", "cases_with"]
