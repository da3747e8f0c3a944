"""Receivers relaybridge connects (from ``AppConfig.ready``).

* ``pre_save`` on the comment model: blank Relay tokens pasted into the text.
* ``post_save`` on the comment model: find mentions, send ``comment_mention``.
* ``comment_mention``: create the runs, queue their dispatch after commit.

Saving a comment again never runs an agent twice: only agents without a run for
that comment are sent on. An edit that adds a *new* mention does run that agent
(the comment now asks it something), up to ``RELAYBRIDGE_MAX_MENTIONS`` runs per
comment in total.

Comments written by agents trigger nothing unless ``RELAYBRIDGE_AGENT_HOPS`` is on;
then a reply's mentions run at the reply's hop depth (its run's depth + 1), and
not at all beyond ``RELAYBRIDGE_AGENT_HOP_DEPTH``. An agent never triggers itself.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models.signals import post_save, pre_save

from . import services
from .adapters import get_adapter
from .agents import known_agent_ids
from .comment_model import comment_model_problem
from .conf import relay_settings
from .mentions import find_mentions
from .models import AgentRun
from .signals import comment_mention, reply_hop_depth


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


def redact_comment_secrets(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    # A token pasted into a thread would be stored, shown to everyone who reads it
    # and sent on to agents: it is blanked before the comment is written at all.
    if not raw:
        get_adapter().redact_secrets(instance)


def comment_saved(
    sender: Any, instance: Any, created: bool = False, raw: bool = False, **kwargs: Any
) -> None:
    if raw:  # loading fixtures: history, not new requests
        return
    adapter = get_adapter()
    author_agent = adapter.is_agent_comment(instance)
    hop_depth = 0
    if author_agent:
        if not relay_settings.AGENT_HOPS:
            return
        hop_depth = _hop_depth_of_agent_comment(instance)
        if hop_depth > relay_settings.AGENT_HOP_DEPTH:
            return
    agent_ids = find_mentions(
        adapter.text(instance), known_agent_ids(), relay_settings.MAX_MENTIONS
    )
    if author_agent:
        agent_ids = [a for a in agent_ids if a.lower() != author_agent.lower()]
    if agent_ids and not created:
        already = set(AgentRun.objects.filter(comment=instance).values_list("agent_id", flat=True))
        agent_ids = [a for a in agent_ids if a not in already]
    if not agent_ids:
        return
    comment_mention.send(
        sender=sender,
        comment=instance,
        agent_ids=agent_ids,
        requested_by=adapter.requested_by(instance),
        hop_depth=hop_depth,
    )


def _hop_depth_of_agent_comment(comment: Any) -> int:
    depth = reply_hop_depth.get()
    if depth is not None:
        return depth
    producing_run = AgentRun.objects.filter(reply_comment=comment).values_list(
        "hop_depth", flat=True
    )
    for run_depth in producing_run[:1]:
        return run_depth + 1
    return 1  # written by an agent outside a run (an import): at least one hop


def create_runs_for_mention(
    sender: Any,
    comment: Any,
    agent_ids: list[str],
    requested_by: Any = None,
    hop_depth: int = 0,
    **kwargs: Any,
) -> None:
    for run in services.create_runs(comment, agent_ids, requested_by, hop_depth=hop_depth):
        services.queue_dispatch(run.run_id)
