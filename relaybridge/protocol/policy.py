"""What relaybridge does about each error code (relay-protocol.md §4), as data.

The table is the one place that says whether a failure is retried, how often,
after how long, and what a person reads about it. Delays are deterministic (no
jitter) so that the page can honestly say "retrying in 4 s": the runs of one
deployment are few enough that synchronised retries are not a concern, unlike
reconnects (see :mod:`relaybridge.protocol.backoff`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .codes import ErrorCode, normalize_code

#: What RATE_LIMITED waits when Relay gives no hint: one full per-minute window.
RATE_LIMIT_DEFAULT_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """The policy for one error code.

    ``delays_s`` has one entry per allowed retry, so its length is the retry
    budget. ``message`` is shown to people; ``{agent}`` is the agent's name.
    """

    code: str
    message: str
    delays_s: tuple[float, ...] = ()
    #: Relay will refuse this agent to this app until the next discovery.
    mark_agent_unavailable: bool = False
    #: The agent list is stale: discover again.
    rediscover: bool = False
    #: A bug or a surprise: log at error level, with the raw frame.
    loud: bool = False
    #: About the connection (authentication), not about one event.
    connection_level: bool = False

    def __post_init__(self) -> None:
        # Plain str and float, whatever spelling the table used.
        object.__setattr__(self, "code", str(self.code))
        object.__setattr__(self, "delays_s", tuple(float(d) for d in self.delays_s))

    @property
    def retryable(self) -> bool:
        return bool(self.delays_s)

    @property
    def max_retries(self) -> int:
        return len(self.delays_s)


def gettext_noop(message: str) -> str:
    """Mark ``message`` for ``makemessages`` (which looks for this name) and return it.

    This core imports no Django: the messages stay English here, and the page
    translates them where it shows them (:mod:`relaybridge.fragments`).
    """
    return message


_C = ErrorCode
_TABLE = (
    CodePolicy(_C.AGENT_OFFLINE, gettext_noop("{agent} is offline"), delays_s=(2, 4, 8, 16, 32)),
    # Local pacing keeps this rare; when it happens, wait out the window.
    CodePolicy(
        _C.RATE_LIMITED,
        gettext_noop("Relay's rate limit was reached"),
        delays_s=(RATE_LIMIT_DEFAULT_WAIT_S,) * 5,
    ),
    CodePolicy(_C.AGENT_TIMEOUT, gettext_noop("{agent} took too long to answer"), delays_s=(5,)),
    CodePolicy(_C.AGENT_ERROR, gettext_noop("{agent} failed while answering"), delays_s=(5,)),
    CodePolicy(
        _C.NOT_ALLOWED,
        gettext_noop("This app is not allowed to reach {agent}"),
        mark_agent_unavailable=True,
    ),
    CodePolicy(
        _C.AGENT_NOT_FOUND,
        gettext_noop("Relay does not know {agent}"),
        mark_agent_unavailable=True,
        rediscover=True,
    ),
    # Payloads are trimmed to fit before sending, so this is a bug of ours.
    CodePolicy(
        _C.PAYLOAD_TOO_LARGE, gettext_noop("The message was too large for Relay"), loud=True
    ),
    CodePolicy(
        _C.INVALID_MESSAGE, gettext_noop("Relay rejected the message as invalid"), loud=True
    ),
    # Auth failures are handled by the connection loop (back off to the cap), not per run.
    CodePolicy(
        _C.UNAUTHORIZED,
        gettext_noop("Relay rejected the app token"),
        loud=True,
        connection_level=True,
    ),
    # The watchdog fails a silent run visibly and does not resend it: the agent may
    # still be working, so the person decides (the Retry button).
    CodePolicy(_C.STALLED, gettext_noop("{agent} stopped answering")),
    # An answer lost with its connection is asked again at once, with the same
    # ``relaybridge_run`` and a new ``relaybridge_attempt``; RELAYBRIDGE_RESEND_LOST
    # sets how often (decide_retry's ``max_retries``).
    CodePolicy(
        _C.CONNECTION_LOST,
        gettext_noop("Connection to Relay was lost"),
        delays_s=(0, 0),
    ),
    CodePolicy(
        _C.BAD_FRAME,
        gettext_noop("Relay sent an answer relaybridge could not read"),
        delays_s=(5,),
        loud=True,
    ),
    # The host adapter raised while building the payload: retrying would raise again.
    CodePolicy(
        _C.PAYLOAD_ERROR, gettext_noop("The mention could not be prepared for the agent"), loud=True
    ),
    # An answer past the bounds on one answer's length or duration: cut off, its text
    # up to the cap kept; retrying would likely run into the same bound.
    CodePolicy(_C.ANSWER_TOO_LONG, gettext_noop("{agent}'s answer was too long and was cut off")),
    CodePolicy(_C.ANSWER_TOO_SLOW, gettext_noop("{agent} took too long to finish and was cut off")),
    # Recorded on a run that is created refused; it is never sent, so never retried.
    CodePolicy(_C.HOP_LIMIT, gettext_noop("Not sent: too many agent replies in this thread")),
    # Admission: created refused with the whole reason, never sent, never retried.
    CodePolicy(_C.NOT_PERMITTED, gettext_noop("You may not call {agent}")),
    CodePolicy(_C.QUOTA, gettext_noop("Not sent: {agent}'s limit is reached")),
    # A person edited or deleted the question: the run is stopped, never retried
    # (an edit asks again as a new revision of the run).
    CodePolicy(_C.EDITED, gettext_noop("The question was edited and asked again")),
    CodePolicy(_C.COMMENT_DELETED, gettext_noop("The question was deleted")),
)

#: Every known code's policy, keyed by canonical code.
POLICIES: Mapping[str, CodePolicy] = MappingProxyType({row.code: row for row in _TABLE})


def policy_for(code: str) -> CodePolicy:
    """The policy for ``code`` (any spelling); unknown codes fail loudly."""
    normalized = normalize_code(code)
    known = POLICIES.get(normalized)
    if known is not None:
        return known
    message = gettext_noop("{agent} could not answer (Relay error {code})")
    return CodePolicy(normalized, message, loud=True)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to retry after a failure with ``code``, and when.

    ``retry_number`` counts from 1 and is ``None`` when not retrying.
    """

    code: str
    retry: bool
    delay_s: float | None
    retry_number: int | None
    max_retries: int
    policy: CodePolicy


def decide_retry(
    code: str,
    retries_so_far: int,
    *,
    retry_after_s: float | None = None,
    max_retries: int | None = None,
) -> RetryDecision:
    """Retry or fail after a failure with ``code``.

    ``retries_so_far`` counts the retries already made for this run because of
    this same code; the caller restarts the count when the code changes, so an
    agent that was offline and then errors still gets its one error retry.
    ``retry_after_s`` is a server hint; it replaces RATE_LIMITED's default wait.
    ``max_retries`` replaces the table's budget (a setting); past the table's delays
    the last one is used again.
    """
    policy = policy_for(code)
    done = max(0, retries_so_far)
    budget = policy.max_retries if max_retries is None else max(0, max_retries)
    if done >= budget or not policy.delays_s:
        return RetryDecision(policy.code, False, None, None, budget, policy)
    delay = float(policy.delays_s[min(done, len(policy.delays_s) - 1)])
    hint = retry_after_s if retry_after_s is not None and math.isfinite(retry_after_s) else None
    if policy.code == ErrorCode.RATE_LIMITED and hint is not None:
        # A hint is trusted within sane bounds: at least a second, at most an hour.
        delay = min(max(hint, 1.0), 3600.0)
    return RetryDecision(policy.code, True, delay, done + 1, budget, policy)


def describe_error(code: str, *, agent: str | None = None) -> str:
    """The human message for ``code``, e.g. "Athena is offline"."""
    policy = policy_for(code)
    message = policy.message.format(agent=agent or "The agent", code=policy.code)
    return message[0].upper() + message[1:]


def format_delay(seconds: float) -> str:
    """A delay for people: ``4 s``, ``2 min``, ``1 min 30 s``.

    Rounded up, so that a countdown never promises less than the wait.
    """
    if not math.isfinite(seconds):
        return "a while"
    total = max(0, math.ceil(seconds))
    minutes, secs = divmod(total, 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def describe_decision(decision: RetryDecision, *, agent: str | None = None) -> str:
    """E.g. "Athena is offline — retrying in 4 s" or "Athena is offline"."""
    message = describe_error(decision.code, agent=agent)
    if decision.retry and decision.code == ErrorCode.CONNECTION_LOST:
        return f"{message} — asking {agent or 'the agent'} again"
    if decision.retry and decision.delay_s is not None:
        return f"{message} — retrying in {format_delay(decision.delay_s)}"
    return message
