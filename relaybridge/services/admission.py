"""Admission: whether a mention may start a run -- who may call the agent, and quotas.

Asked when runs are created (:func:`relaybridge.services.create_runs`), before the
loop backstop. A mention that is not admitted still gets its run, created
``refused`` with the reason and never sent, so the refusal shows under the comment
and in the ledger:

* ``RELAYBRIDGE_NOT_PERMITTED``: the adapter's ``can_mention`` said no ("You may
  not call @deploy-bot.");
* ``RELAYBRIDGE_QUOTA``: a rule of ``RELAYBRIDGE_QUOTAS`` is reached ("Athena's
  limit for you is reached — it resets at 14:05.", see :mod:`relaybridge.quotas`).

Both are checked against the person a run is charged to: who asked, or for a run
agents' replies led to, the person at the start of the chain (``AgentRun.charged_to``).
The comment box's preview asks the same questions without taking locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext

from ..adapters import CommentAdapter
from ..models import AgentRun
from ..protocol.codes import ErrorCode
from ..quotas import QuotaCounter, Subject, quota_rules, refusal_reason
from ..signals import reply_in_progress


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a mention starts no run: the code recorded and the sentence shown."""

    code: str
    message: str


def permission_reason(agent_id: str) -> str:
    return gettext("You may not call @%(agent)s.") % {"agent": agent_id}


def chain_person_id(comment: Any) -> Any | None:
    """The id of the person at the start of the chain that led to ``comment`` (an agent's reply).

    One query: the run whose reply ``comment`` is (being saved now, or saved earlier)
    carries the person it was charged to. None when no person started the chain.
    """
    runs = AgentRun.objects.all()
    reply = reply_in_progress.get()
    if reply is not None:
        runs = runs.filter(run_id=reply.run_id)
    elif getattr(comment, "pk", None) is not None:
        runs = runs.filter(reply_comment=comment.pk)
    else:
        return None
    row = runs.order_by("id").values_list("charged_to_id", "requested_by_id").first()
    if row is None:
        return None
    return row[0] if row[0] is not None else row[1]


def load_person(person_id: Any) -> Any | None:
    if person_id is None:
        return None
    return get_user_model()._default_manager.filter(pk=person_id).first()


def needs_person(adapter: CommentAdapter) -> bool:
    """Whether ``can_mention`` could say no (so the person must be loaded to ask it)."""
    from ..conf import relay_settings

    return bool(relay_settings.AGENT_PERMISSIONS) or (
        type(adapter).can_mention is not CommentAdapter.can_mention
    )


def refusals(
    adapter: CommentAdapter,
    thread: Any,
    agent_ids: Iterable[str],
    person: Any,
    subject: Subject,
    now: datetime,
    *,
    lock: bool = True,
) -> dict[str, Refusal]:
    """The agents of ``agent_ids`` that may not run now, each with its refusal.

    The agents are admitted in order: a run admitted counts against the quotas of
    the ones after it. ``lock=True`` takes the quota counters' locks (call it in
    the transaction that inserts the runs); the preview passes ``lock=False``.
    """
    refused: dict[str, Refusal] = {}
    allowed = []
    for agent_id in agent_ids:
        if adapter.can_mention(person, agent_id, thread):
            allowed.append(agent_id)
        else:
            refused[agent_id] = Refusal(ErrorCode.NOT_PERMITTED.value, permission_reason(agent_id))
    rules = quota_rules()
    if not rules or not allowed:
        return refused
    counter = QuotaCounter(rules, subject, now, lock=lock)
    counter.prepare(allowed)
    for agent_id in allowed:
        over = counter.check(agent_id)
        if over is None:
            counter.admit(agent_id)
            continue
        reason = refusal_reason(over, adapter.agent_display_name(agent_id), now)
        refused[agent_id] = Refusal(ErrorCode.QUOTA.value, reason)
    return refused


def preview_refusals(
    adapter: CommentAdapter, user: Any, agent_ids: list[str], thread: Any | None
) -> dict[str, tuple[str, str]]:
    """What the comment box's preview warns of: ``{agent: ("not_permitted"|"quota", reason)}``.

    The same questions as creating the runs, without locks; ``thread`` None checks
    the person's global permissions and leaves the thread's quotas out.
    """
    from django.utils import timezone

    person = user if getattr(user, "is_authenticated", False) else None
    subject = Subject(
        person_id=getattr(person, "pk", None),
        thread_key=adapter.thread_key(thread) if thread is not None else "",
    )
    found = refusals(adapter, thread, agent_ids, person, subject, timezone.now(), lock=False)
    return {
        agent_id: (
            "not_permitted" if refusal.code == ErrorCode.NOT_PERMITTED.value else "quota",
            refusal.message,
        )
        for agent_id, refusal in found.items()
    }
