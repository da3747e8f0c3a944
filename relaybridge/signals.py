"""Signals relaybridge sends, and what it knows while it saves an agent's reply.

``comment_mention`` -- a saved comment mentions agents.

* ``sender``: the comment model class.
* ``comment``: the comment instance.
* ``agent_ids``: list of agent ids to run, in order (already filtered to known ids).
* ``requested_by``: the user who asked, or None (an agent, an import).
* ``hop_depth`` (optional, default 0): how many agent replies led to this comment;
  relaybridge sets it for comments written by agents when agent hops are enabled.
* ``chosen_by`` (optional): how the agents were chosen -- ``"mentioned"`` (the
  comment names them) or ``"follow-up"`` (no mention: the comment continues the
  asker's conversation with the agent that just answered them, see
  :mod:`relaybridge.follow_ups`). A host's own signal may leave it out.

relaybridge sends it from a ``post_save`` receiver on the comment model; its own
receiver turns it into runs and queues their dispatch after the transaction
commits. A host may also send it itself (an API view, an import) with the same
kwargs; sending it twice for the same comment and agent creates one run. Whoever
sends it, a comment relaybridge is saving (or saved) as an agent's reply runs
agents only through the agent-hop rules (README, "Loop safety").
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

from django.dispatch import Signal

comment_mention = Signal()

#: ``reply_feedback`` -- a person voted on an agent's reply (or changed their vote).
#:
#: * ``sender``: :class:`relaybridge.models.ReplyFeedback`.
#: * ``feedback``: the saved ``ReplyFeedback`` row (``run``, ``user``, ``vote``, ``note``).
#: * ``run``: the :class:`~relaybridge.models.AgentRun` whose reply it is.
#: * ``user``: who voted.
#: * ``vote``: ``"up"`` or ``"down"``; ``previous``: their earlier vote, or None.
#: * ``note``: the optional short note ("" when none).
#:
#: Sent after the vote is saved (on commit), from the view that records it.
reply_feedback = Signal()


@dataclass(frozen=True, slots=True)
class ReplyInProgress:
    """The run whose reply relaybridge is saving right now (in this thread of control)."""

    run_id: UUID
    #: The agent the reply is by.
    agent_id: str
    #: The hop depth the reply carries: its run's depth + 1.
    hop_depth: int


#: Set by :func:`relaybridge.services.record_reply` around the adapter's
#: ``save_reply``. Every comment saved meanwhile -- however many saves the adapter
#: makes, whatever ``is_agent_comment`` answers between them -- is the agent's reply,
#: so the receivers hold it to the agent-hop rules at this depth.
reply_in_progress: ContextVar[ReplyInProgress | None] = ContextVar(
    "relaybridge_reply_in_progress", default=None
)
