"""Who wrote a comment that mentions agents, and which of those agents may run.

Loop safety does not rest on the adapter. A comment is an agent's when relaybridge
is saving it as that agent's reply (:data:`relaybridge.signals.reply_in_progress`),
or when a run's ``reply_comment`` points at it -- whatever ``is_agent_comment``
answers. Only then is the adapter asked, for comments agents wrote outside a run
(an import). The hop depth follows the chain of runs: a reply carries its run's
depth + 1. The same chain, followed back, names the person whose turn a run waits
for on the shared Relay connection (:func:`asker_key`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..adapters import get_adapter
from ..conf import relay_settings
from ..models import AgentRun
from ..signals import reply_in_progress


@dataclass(frozen=True, slots=True)
class Authorship:
    """Who wrote a comment, as the agent-hop rules see it."""

    #: The agent that wrote it, or None for a person.
    agent_id: str | None = None
    #: How many agent replies led to it (0 for a person's comment).
    hop_depth: int = 0


PERSON = Authorship()


def saved_reply_author(comment: Any) -> Authorship | None:
    """The authorship of ``comment`` if relaybridge saved it as an agent's reply, else None.

    One query: the run whose ``reply_comment`` it is.
    """
    if getattr(comment, "pk", None) is None:
        return None
    row = (
        AgentRun.objects.filter(reply_comment=comment.pk)
        .order_by("id")
        .values_list("agent_id", "hop_depth")
        .first()
    )
    if row is None:
        return None
    agent_id, depth = row
    return Authorship(agent_id, depth + 1)


def comment_author(comment: Any, *, created: bool | None = None, hop_depth: int = 0) -> Authorship:
    """Who wrote ``comment``: the reply being saved, a reply saved earlier, or the adapter's word.

    ``created`` is the ``post_save`` flag (None: unknown). A comment just created
    outside a reply cannot be a saved reply yet, which spares the lookup.
    ``hop_depth`` is a depth the caller already claims (a host's own signal); the
    deeper of it and the chain's depth wins.
    """
    reply = reply_in_progress.get()
    if reply is not None:
        return Authorship(reply.agent_id, max(hop_depth, reply.hop_depth))
    if not created:
        saved = saved_reply_author(comment)
        if saved is not None:
            return Authorship(saved.agent_id, max(hop_depth, saved.hop_depth))
    adapter_agent = get_adapter().is_agent_comment(comment)
    if adapter_agent:
        # Written by an agent outside a run (an import): at least one hop.
        return Authorship(adapter_agent, max(hop_depth, 1))
    return Authorship(None, hop_depth)


def agents_to_run(agent_ids: Iterable[str], author: Authorship) -> list[str]:
    """The mentioned agents the agent-hop rules let ``author``'s comment run.

    A person's comment runs them all. An agent's -- or any comment that agents'
    replies led to (``hop_depth`` > 0) -- runs none unless ``RELAYBRIDGE_AGENT_HOPS``
    is on, none beyond ``RELAYBRIDGE_AGENT_HOP_DEPTH``, and never the agent itself.
    """
    wanted = list(agent_ids)
    if author.agent_id is None and author.hop_depth <= 0:
        return wanted
    if not relay_settings.AGENT_HOPS or author.hop_depth > relay_settings.AGENT_HOP_DEPTH:
        return []
    itself = (author.agent_id or "").lower()
    return [agent_id for agent_id in wanted if agent_id.lower() != itself]


def asker_key(run: AgentRun) -> str | None:
    """Whose turn ``run`` waits for in the relay worker's queue: the person who asked.

    A person's run is theirs (the user's primary key, as text). A run that agents'
    replies led to is the person's at the start of the chain: the runs whose replies
    led to it are followed back, one query a hop, to the run a person asked for.
    ``None`` when no person asked (an agent's comment outside a run, a host's signal
    without a user, a chain whose start is gone): those runs share one lane. Needs
    no query for a run a person asked for directly, or one that is no hop.
    """
    user_id: int | None = run.requested_by_id
    depth, comment_id = run.hop_depth, run.comment_id
    while user_id is None and depth > 0:
        row = (
            AgentRun.objects.filter(reply_comment=comment_id)
            .order_by("id")
            .values_list("requested_by_id", "hop_depth", "comment_id")
            .first()
        )
        # A reply carries its run's depth + 1: a chain that does not get shallower
        # is not one relaybridge made, and is not followed.
        if row is None or row[1] >= depth:
            return None
        user_id, depth, comment_id = row
    return None if user_id is None else str(user_id)
