"""Signals relaybridge sends.

``comment_mention`` -- a saved comment mentions agents.

* ``sender``: the comment model class.
* ``comment``: the comment instance.
* ``agent_ids``: list of agent ids to run, in order (already filtered to known ids).
* ``requested_by``: the user who asked, or None (an agent, an import).
* ``hop_depth`` (optional, default 0): how many agent replies led to this comment;
  relaybridge sets it for comments written by agents when agent hops are enabled.

relaybridge sends it from a ``post_save`` receiver on the comment model; its own
receiver turns it into runs and queues their dispatch after the transaction
commits. A host may send it itself (an API view, an import) with the same kwargs;
sending it twice for the same comment and agent creates one run.
"""

from __future__ import annotations

from contextvars import ContextVar

from django.dispatch import Signal

comment_mention = Signal()

#: While relaybridge saves an agent's reply, the hop depth that reply carries (the
#: run's depth + 1), so mentions inside it are attributed to the right depth. Set
#: by :func:`relaybridge.services.record_reply`, read by the post_save receiver.
reply_hop_depth: ContextVar[int | None] = ContextVar("relaybridge_reply_hop_depth", default=None)
