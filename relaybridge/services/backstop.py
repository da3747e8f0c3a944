"""The loop backstop: a cap on runs started by agents' replies, per thread and window.

The agent-hop rules (:mod:`.hops`) bound how deep a chain of agents may go; this
bounds how many such runs a thread may start at all: at most
``RELAYBRIDGE_AGENT_HOP_LIMIT`` runs with ``hop_depth`` > 0 in any
``RELAYBRIDGE_AGENT_HOP_WINDOW`` seconds. A run over the cap is created ``refused``,
with the reason, and never sent: whatever went wrong upstream (an adapter, a host's
own signal, agents that keep asking each other), a loop ends here, visibly.

Race safety: the count and the inserts happen under a lock on the thread's
:class:`~relaybridge.models.ThreadHopGate` row, taken by an ``UPDATE`` and held to
the end of the transaction. On PostgreSQL two hops at once queue on that row lock,
and the second counts after the first has committed (READ COMMITTED reads a fresh
snapshot per statement). On SQLite the ``UPDATE`` takes the database's write lock,
which serializes writers anyway.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from django.db import IntegrityError, connection, transaction
from django.utils.translation import gettext, ngettext

from ..conf import relay_settings
from ..models import AgentRun, ThreadHopGate
from ..protocol.codes import ErrorCode

#: The code a refused hop run records.
HOP_LIMIT_CODE: Final = ErrorCode.HOP_LIMIT.value


def _lock_thread(thread_key: str, now: datetime) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("the hop backstop must run inside a transaction (it holds a lock)")
    if ThreadHopGate.objects.filter(thread_key=thread_key).update(locked_at=now):
        return
    try:
        with transaction.atomic():  # a savepoint: losing the race rolls back only this
            ThreadHopGate.objects.create(thread_key=thread_key, locked_at=now)
    except IntegrityError:
        # Another hop created the row first (and has committed: the unique index
        # waited for it). Take the lock the ordinary way.
        ThreadHopGate.objects.filter(thread_key=thread_key).update(locked_at=now)


def hops_admitted(thread_key: str, wanted: int, now: datetime) -> int:
    """How many of ``wanted`` new hop runs the thread may start now (0 to ``wanted``).

    Call it inside the transaction that creates the runs: the lock it takes is
    held until that transaction ends, so the runs it admits are counted by the
    next caller.
    """
    limit = relay_settings.AGENT_HOP_LIMIT
    if limit is None or wanted <= 0:
        return max(wanted, 0)
    _lock_thread(thread_key, now)
    since = now - timedelta(seconds=relay_settings.AGENT_HOP_WINDOW)
    used = (
        AgentRun.objects.filter(thread_key=thread_key, hop_depth__gt=0, queued_at__gte=since)
        .exclude(status=AgentRun.Status.REFUSED)
        .count()
    )
    return max(0, min(wanted, limit - used))


def describe_window(seconds: float) -> str:
    """``10 minutes``, ``1 hour``, ``90 seconds``: the backstop's window for people."""
    total = max(1, round(seconds))
    if total % 3600 == 0:
        hours = total // 3600
        return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    if total % 60 == 0:
        minutes = total // 60
        return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    return ngettext("%(count)d second", "%(count)d seconds", total) % {"count": total}


def hop_limit_reason() -> str:
    """What the page shows for a run the backstop refused."""
    return gettext("Not sent: too many agent replies in this thread in the last %(window)s.") % {
        "window": describe_window(relay_settings.AGENT_HOP_WINDOW)
    }
