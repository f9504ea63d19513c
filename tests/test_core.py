"""The vendor-free core: the error tree, the event model, pricing, transport security settings."""

from __future__ import annotations

import pytest

from llmmixer.servers.core import errors, pricing
from llmmixer.servers.core.events import Event
from llmmixer.servers.core.transport import is_loopback, security_settings


@pytest.mark.parametrize("kind", list(errors.ErrorKind))
def test_every_kind_has_a_class_that_round_trips(kind: errors.ErrorKind) -> None:
    cls = errors.error_class(kind)
    original = cls("it broke", vendor="anthropic", status=429, retry_after_s=1.5)
    rebuilt = errors.error_from_dict(original.to_dict())
    assert type(rebuilt) is cls
    assert rebuilt.to_dict() == original.to_dict()


def test_retryable_kinds_are_exactly_the_taxonomy_ones() -> None:
    retryable = {k.value for k in errors.ErrorKind if errors.error_class(k).retryable}
    assert retryable == {"rate_limit", "overloaded", "server", "unavailable", "timeout", "connection"}
    assert all(issubclass(errors.error_class(k), errors.RetryableError) for k in retryable)


def test_unknown_kind_from_a_newer_peer_is_a_server_error() -> None:
    error = errors.error_from_dict({"error": {"kind": "brand_new", "message": "x"}})
    assert isinstance(error, errors.ServerError)


def test_event_round_trip_and_type_check() -> None:
    event = Event(run="r1", source="claude", type="delta", data={"text": "안녕 🚀"}).with_id(7)
    assert Event.from_json(event.to_json()) == event
    with pytest.raises(ValueError):
        Event(run="r1", source="claude", type="not.a.type")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-5", (3.0, 15.0)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.6)),
        ("gpt-4o", (2.5, 10.0)),
        ("models/gemini-2.5-flash", (0.3, 2.5)),
        ("gpt-4o-minibus", None),
        ("mystery-model", None),
    ],
)
def test_prices_match_families_and_never_guess(model: str, expected: tuple[float, float] | None) -> None:
    assert pricing.price_per_million(model) == expected


def test_cost_is_null_without_a_price_or_usage() -> None:
    assert pricing.cost_usd("gpt-5-mini", 1000, 500) == pytest.approx(0.00125)
    assert pricing.cost_usd("mystery-model", 1000, 500) is None
    assert pricing.cost_usd("gpt-5-mini", None, 500) is None


def test_security_settings_keep_the_guard_on_for_every_bind() -> None:
    for host in ("127.0.0.1", "0.0.0.0", "10.1.2.3"):
        settings = security_settings(host)
        assert settings.enable_dns_rebinding_protection
        assert "127.0.0.1:*" in settings.allowed_hosts
    assert "10.1.2.3:*" in security_settings("10.1.2.3").allowed_hosts
    assert is_loopback("::1") and is_loopback("127.0.0.2") and not is_loopback("0.0.0.0")
