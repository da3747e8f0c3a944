"""Pure parts of the emulator: token tables, auth, validation order, agent scripts."""

from __future__ import annotations

import json

import pytest

from relaybridge.emulator import EmulatorConfig, builtin_agents
from relaybridge.emulator.agents import split_tokens, summarize
from relaybridge.emulator.auth import Endpoint, Route, presented_token, resolve
from relaybridge.emulator.cli import add_arguments, config_from_args
from relaybridge.emulator.config import (
    APP_TOKEN_PREFIX,
    build_token_table,
    default_id,
    parse_allow_spec,
)
from relaybridge.emulator.faults import Faults
from relaybridge.emulator.validation import EventRequest, Refusal, parse_app_frame, validate_event


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("rlk_demo_abc123", "demo"),
        ("rlk_my_app_x9", "my_app"),
        ("rlk_nodelimiter", None),
        ("rlk__x", None),
        ("rla_athena_1", None),  # wrong prefix for an app token
        ("opaque", None),
    ],
)
def test_default_app_id(token: str, expected: str | None) -> None:
    assert default_id(token, APP_TOKEN_PREFIX) == expected


def test_token_table_explicit_ids_and_fallbacks() -> None:
    table = build_token_table(
        ["rlk_demo_abc", "rlk_a_b=portal_main", "opaque", "other"], APP_TOKEN_PREFIX, "app"
    )
    assert table == {
        "rlk_demo_abc": "demo",
        "rlk_a_b": "portal_main",
        "opaque": "app",
        "other": "app2",
    }


def test_allow_spec() -> None:
    assert parse_allow_spec("portal=athena, klyve") == ("portal", frozenset({"athena", "klyve"}))
    with pytest.raises(ValueError):
        parse_allow_spec("portal")


def test_config_rejects_a_token_in_both_tables() -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(app_tokens={"t": "a"}, agent_tokens={"t": "b"})


def test_cli_options_build_the_config() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            *("--port", "0", "--agent-token", "rla_x_1=scout", "--plan", "scale"),
            *("--allow", "demo=athena", "--agent-delay-ms", "slow=5", "--agents", "athena,slow"),
            *("--bad-token", "http_401", "--queue-offline"),
        ]
    )
    config = config_from_args(args, {"RELAY_APP_TOKEN": "rlk_env_123"})
    assert dict(config.app_tokens) == {"rlk_env_123": "env"}
    assert dict(config.agent_tokens) == {"rla_x_1": "scout"}
    assert config.plan.name == "scale" and config.queue_offline
    assert config.allowed_agents == {"demo": frozenset({"athena"})}
    assert config.delay_for("slow", 100) == 0.005
    assert config.builtin_agents == frozenset({"athena", "slow"})
    assert config.bad_token == "http_401"
    default = config_from_args(parser.parse_args([]), {})
    assert dict(default.app_tokens) == {"rlk_demo_localemulator": "demo"}


def test_presented_token_header_wins() -> None:
    assert presented_token("/v1/ws/app?token=q", "Bearer h") == "h"
    assert presented_token("/v1/ws/app?token=q", "bearer  h ") == "h"
    assert presented_token("/v1/ws/app?token=q", "Basic abc") == "q"
    assert presented_token("/v1/ws/app", None) is None


def test_resolve_uses_the_table_of_the_endpoint() -> None:
    config = EmulatorConfig(app_tokens={"rlk_a_1": "a"}, agent_tokens={"rla_b_1": "b"})
    assert resolve("/v1/ws/app?token=rlk_a_1", None, config) == Route(Endpoint.APP, "a")
    assert resolve("/v1/ws/agent", "Bearer rla_b_1", config) == Route(Endpoint.AGENT, "b")
    assert resolve("/v1/ws/agent", "Bearer rlk_a_1", config) == Route(Endpoint.AGENT, None)
    assert resolve("/v1/ws/other", "Bearer rlk_a_1", config) is None


def test_validation_returns_the_first_fault() -> None:
    assert parse_app_frame('{"type": "event"}') == {"type": "event"}
    frame = {"type": "event", "agent_id": 1, "thread_id": "", "payload": []}
    refusal = validate_event(frame)
    assert isinstance(refusal, Refusal) and "agent_id" in refusal.message
    ok = validate_event({"type": "event", "agent_id": "a", "thread_id": "t:1", "payload": {}})
    assert ok == EventRequest("a", "t:1", {})


def test_faults_are_consumed_per_agent_in_order() -> None:
    faults = Faults()
    faults.fail_next_events(1, "RATE_LIMITED", agent_id="klyve")
    faults.fail_next_events(1, "AGENT_OFFLINE")
    first = faults.take_failure("athena")
    assert first is not None and first.code == "AGENT_OFFLINE"
    assert faults.take_failure("athena") is None
    second = faults.take_failure("klyve")
    assert second is not None and second.code == "RATE_LIMITED"
    assert faults.pending_failures == 0


@pytest.mark.parametrize("text", ["one", "two words", " lead", "a\n\nb  c ", ""])
def test_split_tokens_round_trips(text: str) -> None:
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert all(t.strip() for t in tokens[:-1] or [])


def test_athena_summary_is_deterministic_and_readable() -> None:
    payload = {
        "message": "@athena  summarize\nthis",
        "task_title": "Launch",
        "sender": {"name": "Dana"},
        "comments": [{"author": "Lee", "text": "x"}],
    }
    text = summarize(payload)
    assert text == summarize(json.loads(json.dumps(payload)))
    assert text.startswith('Summary of "Launch". Dana asked: "@athena summarize this".')
    assert "1 comment, the latest by Lee." in text
    assert summarize({}).startswith("Summary of this thread. There are no earlier comments.")


def test_every_builtin_agent_describes_itself() -> None:
    agents = builtin_agents()
    assert list(agents) == ["athena", "klyve", "offline", "broken", "sleepy", "stall", "slow"]
    for agent_id, agent in agents.items():
        described = agent.describe()
        assert described["agent_id"] == agent_id and described["name"] and described["description"]
    assert list(builtin_agents(["klyve"])) == ["klyve"]
