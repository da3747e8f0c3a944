"""Every row of the error-code policy (relay-protocol.md §4)."""

from __future__ import annotations

import pytest

from relaybridge.protocol import (
    POLICIES,
    ErrorCode,
    decide_retry,
    describe_decision,
    describe_error,
    format_delay,
    normalize_code,
    policy_for,
)


def retries(code: str) -> list[float | None]:
    """The delays decide_retry hands out until it gives up."""
    delays = []
    for done in range(20):
        decision = decide_retry(code, done)
        if not decision.retry:
            assert decision.delay_s is None and decision.retry_number is None
            break
        assert decision.retry_number == done + 1
        delays.append(decision.delay_s)
    return delays


def test_agent_offline_doubles_five_times() -> None:
    assert retries("AGENT_OFFLINE") == [2, 4, 8, 16, 32]
    assert decide_retry("AGENT_OFFLINE", 5).retry is False
    assert decide_retry("AGENT_OFFLINE", 0).max_retries == 5


def test_rate_limited_waits_for_the_window() -> None:
    assert retries("RATE_LIMITED") == [60.0] * 5


def test_rate_limited_honours_a_hint_within_bounds() -> None:
    assert decide_retry("RATE_LIMITED", 0, retry_after_s=12.5).delay_s == 12.5
    assert decide_retry("RATE_LIMITED", 0, retry_after_s=0).delay_s == 1.0
    assert decide_retry("RATE_LIMITED", 0, retry_after_s=1e9).delay_s == 3600.0
    assert decide_retry("RATE_LIMITED", 0, retry_after_s=float("nan")).delay_s == 60.0
    # Hints are only for rate limits.
    assert decide_retry("AGENT_OFFLINE", 0, retry_after_s=30).delay_s == 2.0


@pytest.mark.parametrize("code", ["AGENT_TIMEOUT", "AGENT_ERROR"])
def test_timeouts_and_agent_errors_retry_once(code: str) -> None:
    assert len(retries(code)) == 1


@pytest.mark.parametrize("code", ["NOT_ALLOWED", "AGENT_NOT_ALLOWED"])
def test_not_allowed_fails_and_marks_the_agent_unavailable(code: str) -> None:
    assert retries(code) == []
    policy = policy_for(code)
    assert policy.code == "NOT_ALLOWED"
    assert policy.mark_agent_unavailable and not policy.rediscover


def test_agent_not_found_fails_marks_the_agent_and_rediscovers() -> None:
    assert retries("AGENT_NOT_FOUND") == []
    assert policy_for("AGENT_NOT_FOUND").rediscover
    assert policy_for("AGENT_NOT_FOUND").mark_agent_unavailable


def test_a_stalled_run_is_not_resent_automatically() -> None:
    # The agent may still be working; the person decides with the Retry button.
    assert retries(ErrorCode.STALLED) == []


@pytest.mark.parametrize("code", ["PAYLOAD_TOO_LARGE", "INVALID_MESSAGE"])
def test_our_own_bugs_fail_loudly(code: str) -> None:
    assert retries(code) == []
    assert policy_for(code).loud


def test_unauthorized_is_about_the_connection() -> None:
    policy = policy_for("UNAUTHORIZED")
    assert policy.connection_level and not policy.retryable


def test_unknown_codes_fail_and_are_logged_with_the_frame() -> None:
    policy = policy_for("SOMETHING_NEW")
    assert (policy.code, policy.retryable, policy.loud) == ("SOMETHING_NEW", False, True)
    assert describe_error("something_new", agent="Athena") == (
        "Athena could not answer (Relay error SOMETHING_NEW)"
    )


@pytest.mark.parametrize(
    ("code", "count"),
    [
        (ErrorCode.CONNECTION_LOST, 2),
        (ErrorCode.BAD_FRAME, 1),
    ],
)
def test_local_codes_are_retryable(code: ErrorCode, count: int) -> None:
    assert code.startswith("RELAYBRIDGE_")
    assert len(retries(code)) == count


def test_payload_errors_are_not_retried_and_are_loud() -> None:
    policy = policy_for(ErrorCode.PAYLOAD_ERROR)
    assert ErrorCode.PAYLOAD_ERROR.value == "RELAYBRIDGE_PAYLOAD_ERROR"
    assert (policy.retryable, policy.loud) == (False, True)
    assert retries(ErrorCode.PAYLOAD_ERROR) == []


def test_every_known_code_has_a_row_and_a_message() -> None:
    assert set(POLICIES) == {code.value for code in ErrorCode}
    for code, policy in POLICIES.items():
        assert policy.code == code and type(policy.code) is str
        assert describe_error(code)  # formats without a KeyError
        # Only an answer lost with its connection is asked again at once.
        minimum = 0 if code == ErrorCode.CONNECTION_LOST else 1e-9
        assert all(isinstance(d, float) and d >= minimum for d in policy.delays_s)


def test_decisions_are_deterministic() -> None:
    assert [decide_retry("AGENT_OFFLINE", 1) for _ in range(3)] == [
        decide_retry("AGENT_OFFLINE", 1)
    ] * 3


def test_negative_counts_mean_none_so_far() -> None:
    assert decide_retry("AGENT_OFFLINE", -3).delay_s == 2.0


def test_messages() -> None:
    assert describe_error("AGENT_OFFLINE", agent="Athena") == "Athena is offline"
    assert describe_error("AGENT_OFFLINE") == "The agent is offline"
    assert describe_error("AGENT_NOT_ALLOWED", agent="Athena") == (
        "This app is not allowed to reach Athena"
    )
    decision = decide_retry("AGENT_OFFLINE", 1)
    assert describe_decision(decision, agent="Athena") == "Athena is offline — retrying in 4 s"
    assert describe_decision(decide_retry("AGENT_OFFLINE", 5), agent="Athena") == (
        "Athena is offline"
    )
    assert describe_decision(decide_retry("RATE_LIMITED", 0)) == (
        "Relay's rate limit was reached — retrying in 1 min"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.2, "1 s"), (4, "4 s"), (59.5, "1 min"), (90, "1 min 30 s"), (-1, "0 s")],
)
def test_format_delay(seconds: float, text: str) -> None:
    assert format_delay(seconds) == text


def test_format_delay_of_a_non_number() -> None:
    assert format_delay(float("inf")) == "a while"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("AGENT_NOT_ALLOWED", "NOT_ALLOWED"),
        (" agent_offline ", "AGENT_OFFLINE"),
        ("weird", "WEIRD"),
    ],
)
def test_normalize_code(raw: str, code: str) -> None:
    assert normalize_code(raw) == code
