"""Sync use-cases over the run ledger.

Every status change is a conditional update (``filter(run_id=…, status__in=…)
.update(…)``) that returns whether it happened: zero rows changed means another
process got there first, and the caller does nothing. Callers from asyncio wrap
these in ``sync_to_async``.

Run states (DESIGN §3)::

    queued → sending → accepted → streaming → replied
                 ↘          ↘          ↘
                  retrying (scheduled) · failed · stopped

    refused: created so, never sent (admission -- who may call the agent, quotas --
             :mod:`.admission`; the loop backstop, :mod:`.backstop`)

``retry_run`` takes a failed or stopped run back to ``queued``.

Error codes recorded on runs -- Relay's and relaybridge's own (``RELAYBRIDGE_*``) --
are :class:`relaybridge.protocol.codes.ErrorCode` members; their retry policy and
messages are in :mod:`relaybridge.protocol.policy`.
"""

from .backstop import hop_limit_reason, hops_admitted
from .dispatch import prepare_dispatch
from .hops import Authorship, agents_to_run, asker_key, comment_author, saved_reply_author
from .payload import build_payload, fit_payload
from .pushes import clear_stream, push_status, read_stream, settle_stopped_text
from .runs import (
    RunRef,
    abandoned_claims,
    active_runs,
    create_runs,
    get_run,
    overlong_runs,
    queue_dispatch,
    runs_to_redispatch,
    runs_to_sweep,
    stalled_runs,
)
from .transitions import (
    claim_for_sending,
    mark_accepted,
    mark_sent,
    mark_sent_many,
    mark_stopped,
    recent_send_times,
    record_error,
    record_first_token,
    record_first_tokens,
    record_reply,
    record_reply_and_run,
    release_abandoned_claim,
    retry_run,
    store_payload,
    touch,
    touch_runs,
)

__all__ = [
    "Authorship",
    "RunRef",
    "abandoned_claims",
    "active_runs",
    "agents_to_run",
    "asker_key",
    "build_payload",
    "claim_for_sending",
    "clear_stream",
    "comment_author",
    "create_runs",
    "fit_payload",
    "get_run",
    "hop_limit_reason",
    "hops_admitted",
    "mark_accepted",
    "mark_sent",
    "mark_sent_many",
    "mark_stopped",
    "overlong_runs",
    "prepare_dispatch",
    "push_status",
    "queue_dispatch",
    "read_stream",
    "recent_send_times",
    "record_error",
    "record_first_token",
    "record_first_tokens",
    "record_reply",
    "record_reply_and_run",
    "release_abandoned_claim",
    "retry_run",
    "runs_to_redispatch",
    "runs_to_sweep",
    "saved_reply_author",
    "settle_stopped_text",
    "stalled_runs",
    "store_payload",
    "touch",
    "touch_runs",
]
