"""Settings are read lazily with defaults in one place; the token only from the environment."""

from __future__ import annotations

from typing import Any

import pytest

from relaybridge import conf
from relaybridge.conf import relay_settings
from relaybridge.protocol.pacing import SCALE, STARTER, UNLIMITED, PlanLimits


def test_defaults(settings: Any) -> None:
    for name in list(conf.DEFAULTS):
        if hasattr(settings, f"RELAYBRIDGE_{name}"):
            delattr(settings, f"RELAYBRIDGE_{name}")
    assert relay_settings.COMMENT_MODEL is None  # required: check relaybridge.E003
    assert relay_settings.ADAPTER == "relaybridge.adapters.DefaultCommentAdapter"
    assert relay_settings.MAX_MENTIONS == 5
    assert relay_settings.AGENTS == []
    assert relay_settings.AGENT_HOPS is False and relay_settings.AGENT_HOP_DEPTH == 1
    assert relay_settings.HISTORY_COMMENTS == 20
    assert relay_settings.STREAM_FLUSH_MS == 50
    assert relay_settings.STALL_TIMEOUT == 120 and relay_settings.SHUTDOWN_TIMEOUT == 30
    assert relay_settings.MAX_ANSWER_CHARS == 200_000
    assert relay_settings.MAX_ANSWER_SECONDS == 600
    assert relay_settings.OUTBOUND_CHANNEL == "relaybridge.outbound"
    assert relay_settings.BUFFER_TTL == 3600 and relay_settings.REDIS_URL is None
    assert relay_settings.AUTH_STYLE == "header" and relay_settings.PLAN == "starter"
    assert relay_settings.plan_limits() == PlanLimits(60, 3600, 10)


def test_settings_are_read_at_access_time(settings: Any) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 2
    assert relay_settings.MAX_MENTIONS == 2
    settings.RELAYBRIDGE_PLAN = "scale"
    settings.RELAYBRIDGE_MAX_CONCURRENT = 7
    assert relay_settings.plan_limits() == PlanLimits(300, 18_000, 7)


def test_plan_limits_are_the_protocol_plans(settings: Any) -> None:
    for name in ("EVENTS_PER_MINUTE", "EVENTS_PER_HOUR", "MAX_CONCURRENT"):
        if hasattr(settings, f"RELAYBRIDGE_{name}"):
            delattr(settings, f"RELAYBRIDGE_{name}")
    for plan, limits in (("starter", STARTER), ("Scale", SCALE), ("unlimited", UNLIMITED)):
        settings.RELAYBRIDGE_PLAN = plan
        assert relay_settings.plan_limits() == limits
    settings.RELAYBRIDGE_EVENTS_PER_HOUR = 100
    assert relay_settings.plan_limits() == PlanLimits(None, 100, None)
    settings.RELAYBRIDGE_PLAN = "enterprise"  # unknown: starter's limits (check E006 says so)
    assert relay_settings.plan_limits() == PlanLimits(60, 100, 10)


def test_example_project_fallback_agents() -> None:
    assert relay_settings.AGENTS == [
        "athena",
        "klyve",
        "offline",
        "broken",
        "sleepy",
        "stall",
        "slow",
    ]


def test_unknown_setting() -> None:
    with pytest.raises(AttributeError):
        relay_settings.get("NOPE")


def test_token_and_url_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.delenv("RELAY_APP_TOKEN", raising=False)
    monkeypatch.delenv("RELAY_URL", raising=False)
    assert conf.app_token() is None and conf.uses_emulator()
    assert conf.relay_url() == "wss://api.relay.ckgworks.com/v1/ws/app"
    monkeypatch.setenv("RELAY_APP_TOKEN", "  ")
    assert conf.app_token() is None
    monkeypatch.setenv("RELAY_APP_TOKEN", "rlk_portal_abc")
    monkeypatch.setenv("RELAY_URL", "ws://127.0.0.1:8765/v1/ws/app")
    assert conf.app_token() == "rlk_portal_abc" and not conf.uses_emulator()
    assert conf.relay_url() == "ws://127.0.0.1:8765/v1/ws/app"
    assert "rlk_" not in repr(relay_settings)


def test_redact(monkeypatch: Any) -> None:
    monkeypatch.setenv("RELAY_APP_TOKEN", "weird-token-without-prefix")
    text = "failed with weird-token-without-prefix and rla_athena_x1 and rlk_app_2"
    assert conf.redact(text) == "failed with [redacted] and [redacted] and [redacted]"
