"""Receivers relaybridge connects (from ``AppConfig.ready``).

* ``pre_save`` on the comment model: blank Relay tokens pasted into the text.
* ``post_save`` on the comment model: find mentions, send ``comment_mention``
  (``chosen_by="mentioned"``); a new comment without a mention may be a follow-up
  (:mod:`relaybridge.follow_ups`, ``chosen_by="follow-up"``).
* django_comments' ``comment_will_be_posted`` (when installed): the comment form's
  follow-up opt-out, carried to the comment.
* ``comment_mention``: create the runs, queue their dispatch after commit.

Each first asks the adapter whether it ``handles`` the comment (a thread it serves);
comments it does not handle are ignored at the cost of that one check.

Saving a comment again never runs an agent twice: only agents without a run for
that comment are sent on. An edit that adds a *new* mention does run that agent
(the comment now asks it something), up to ``RELAYBRIDGE_MAX_MENTIONS`` runs per
comment in total.

Loop safety (README, "Loop safety"): a comment relaybridge is saving as an agent's
reply, or saved as one earlier, is that agent's whatever the adapter says
(:mod:`relaybridge.services.hops`). Agents' comments trigger nothing unless
``RELAYBRIDGE_AGENT_HOPS`` is on; then a reply's mentions run at the reply's hop
depth (its run's depth + 1), not at all beyond ``RELAYBRIDGE_AGENT_HOP_DEPTH``, and
within the thread's hop limit (:mod:`relaybridge.services.backstop`). An agent
never triggers itself.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from . import follow_ups, services
from .adapters import get_adapter
from .agents import known_agent_ids
from .comment_model import comment_model_problem
from .conf import relay_settings
from .mentions import find_mentions
from .models import AgentRun
from .signals import comment_mention

#: The comment whose ``comment_mention`` :func:`comment_saved` is sending: its author
#: is already settled, so :func:`create_runs_for_mention` need not look it up again.
_author_settled: ContextVar[tuple[Any, services.Authorship] | None] = ContextVar(
    "relaybridge_author_settled", default=None
)


def connect_receivers() -> None:
    # Called once every model is loaded: a setting that names no model is left to the
    # check (relaybridge.E003) rather than to a lazy sender Django would report too.
    if comment_model_problem() is None:
        comment_model = apps.get_model(str(relay_settings.COMMENT_MODEL))
        pre_save.connect(
            redact_comment_secrets,
            sender=comment_model,
            dispatch_uid="relaybridge.redact_comment_secrets",
        )
        post_save.connect(
            comment_saved, sender=comment_model, dispatch_uid="relaybridge.comment_saved"
        )
    comment_mention.connect(create_runs_for_mention, dispatch_uid="relaybridge.create_runs")
    if apps.is_installed("django_comments"):
        # django_comments hands its request to this signal: the form's follow-up opt-out.
        from django_comments.signals import comment_will_be_posted

        comment_will_be_posted.connect(
            follow_ups.comment_will_be_posted, dispatch_uid="relaybridge.follow_up_opt_out"
        )


def redact_comment_secrets(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    # A token pasted into a thread would be stored, shown to everyone who reads it
    # and sent on to agents: it is blanked before the comment is written at all.
    if raw:
        return
    adapter = get_adapter()
    if adapter.handles(instance):
        adapter.redact_secrets(instance)


def comment_saved(
    sender: Any, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any
) -> None:
    if raw:  # loading fixtures: history, not new requests
        return
    adapter = get_adapter()
    if not adapter.handles(instance):
        return
    agent_ids = find_mentions(
        adapter.text(instance), known_agent_ids(), relay_settings.MAX_MENTIONS
    )
    if not agent_ids:
        _follow_up(sender, instance, adapter, created=created)
        return
    author = services.comment_author(instance, created=created)
    agent_ids = services.agents_to_run(agent_ids, author)
    if agent_ids and not created:
        already = set(AgentRun.objects.filter(comment=instance).values_list("agent_id", flat=True))
        agent_ids = [a for a in agent_ids if a not in already]
    if not agent_ids:
        return
    token = _author_settled.set((instance, author))
    try:
        comment_mention.send(
            sender=sender,
            comment=instance,
            agent_ids=agent_ids,
            requested_by=None if author.agent_id else adapter.requested_by(instance),
            hop_depth=author.hop_depth,
            chosen_by=follow_ups.MENTIONED,
        )
    finally:
        _author_settled.reset(token)


def _follow_up(sender: Any, instance: Any, adapter: Any, *, created: bool) -> None:
    """A new comment without a mention: a follow-up of the asker's last answer, maybe."""
    if not created or relay_settings.FOLLOW_UP_WINDOW <= 0:
        return  # off: not even the authorship lookup
    author = services.comment_author(instance, created=created)
    if author.agent_id or author.hop_depth:
        return  # agents' comments never follow up
    requested_by = adapter.requested_by(instance)
    agent_ids = follow_ups.follow_up_agents(instance, requested_by, created=created)
    if not agent_ids:
        return
    token = _author_settled.set((instance, author))
    try:
        comment_mention.send(
            sender=sender,
            comment=instance,
            agent_ids=agent_ids,
            requested_by=requested_by,
            hop_depth=0,
            chosen_by=follow_ups.FOLLOW_UP,
        )
    finally:
        _author_settled.reset(token)


def create_runs_for_mention(
    sender: Any,
    comment: Any,
    agent_ids: list[str],
    requested_by: Any = None,
    hop_depth: int = 0,
    **kwargs: Any,
) -> None:
    if not get_adapter().handles(comment):
        return
    settled = _author_settled.get()
    if settled is not None and settled[0] is comment:
        author = settled[1]
    else:
        # A host's own signal: the hop rules hold for it too (a reply being saved,
        # a reply saved earlier, or a depth the host claims).
        author = services.comment_author(comment, hop_depth=hop_depth)
        agent_ids = services.agents_to_run(agent_ids, author)
    if author.agent_id:
        requested_by = None
    for run in services.create_runs(comment, agent_ids, requested_by, hop_depth=author.hop_depth):
        if run.status == AgentRun.Status.QUEUED:
            services.queue_dispatch(run.run_id)
        else:
            # Refused: never sent, but shown at once on the pages watching the thread.
            transaction.on_commit(lambda run=run: services.push_status(run))  # type: ignore[misc]
