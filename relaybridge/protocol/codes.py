"""Relay's error codes (relay-protocol.md §4) and the local ones relaybridge adds.

Relay's codes are open-ended strings: a code we have never seen is still a valid
error. :class:`ErrorCode` names the ones we act on; :func:`normalize_code` folds
documented spellings onto one name so that policy lookups see one code.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Error codes relaybridge knows. Members compare equal to their strings."""

    # Relay's codes.
    AGENT_OFFLINE = "AGENT_OFFLINE"
    RATE_LIMITED = "RATE_LIMITED"
    AGENT_TIMEOUT = "AGENT_TIMEOUT"
    AGENT_ERROR = "AGENT_ERROR"
    NOT_ALLOWED = "NOT_ALLOWED"
    AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    #: The emulator's (and our reading of Relay's) answer to a bad app token.
    UNAUTHORIZED = "UNAUTHORIZED"

    # Local codes: never on the wire, recorded on runs by relaybridge itself.
    #: The watchdog heard nothing from a run for the stall timeout.
    STALLED = "RELAYBRIDGE_STALLED"
    #: The Relay connection went away while a run depended on it.
    CONNECTION_LOST = "RELAYBRIDGE_CONNECTION_LOST"
    #: Relay sent a frame about a run that could not be read.
    BAD_FRAME = "RELAYBRIDGE_BAD_FRAME"
    #: The event payload for a run could not be built (the host adapter raised).
    PAYLOAD_ERROR = "RELAYBRIDGE_PAYLOAD_ERROR"
    #: The loop backstop refused a run started by an agent's reply (never sent).
    HOP_LIMIT = "RELAYBRIDGE_HOP_LIMIT"
    #: The person may not call the agent (the adapter's ``can_mention``; never sent).
    NOT_PERMITTED = "RELAYBRIDGE_NOT_PERMITTED"
    #: A quota (``RELAYBRIDGE_QUOTAS``) is reached: the run was never sent.
    QUOTA = "RELAYBRIDGE_QUOTA"
    #: The answer passed ``RELAYBRIDGE_MAX_ANSWER_CHARS``: the text up to it is kept.
    ANSWER_TOO_LONG = "RELAYBRIDGE_ANSWER_TOO_LONG"
    #: The answer went on past ``RELAYBRIDGE_MAX_ANSWER_SECONDS``.
    ANSWER_TOO_SLOW = "RELAYBRIDGE_ANSWER_TOO_SLOW"


#: Spellings seen in Relay's documentation for the same condition.
CODE_ALIASES: dict[str, ErrorCode] = {
    "AGENT_NOT_ALLOWED": ErrorCode.NOT_ALLOWED,
}


def normalize_code(code: str) -> str:
    """The canonical spelling of ``code``.

    Case and surrounding blanks are ignored and aliases are folded
    (``AGENT_NOT_ALLOWED`` → ``NOT_ALLOWED``). Unknown codes come back upper-cased,
    so they can still be logged and compared.
    """
    folded = code.strip().upper()
    alias = CODE_ALIASES.get(folded)
    if alias is not None:
        return alias.value
    return folded
