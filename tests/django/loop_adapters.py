"""Adapters that get "this comment is by an agent" wrong, in the ways hosts do.

Loop safety must not depend on them: relaybridge knows which comments it saves as
agents' replies.
"""

from __future__ import annotations

from typing import Any, ClassVar

from project.tasks.models import Comment
from relaybridge.adapters import DefaultCommentAdapter
from relaybridge.models import AgentRun
from relaybridge.signals import comment_mention


class MarksAfterSavingAdapter(DefaultCommentAdapter):
    """Saves the reply as nobody's, then records the agent in a second save.

    The natural way to write it when the agent is recorded by a helper after the
    comment exists: the first ``post_save`` sees a comment no agent wrote.
    """

    def save_reply(self, run: AgentRun, text: str) -> Any:
        reply = Comment.objects.create(task_id=run.comment.task_id, author=None, body=text)
        reply.agent_id = run.agent_id
        reply.save(update_fields=["agent_id"])
        return reply


class NeverMarksAdapter(DefaultCommentAdapter):
    """Keeps no trace of the agent on the comment at all: ``is_agent_comment`` is always None."""

    def is_agent_comment(self, comment: Any) -> str | None:
        return None

    def save_reply(self, run: AgentRun, text: str) -> Any:
        return Comment.objects.create(task_id=run.comment.task_id, author=None, body=text)


class AnnouncesRepliesAdapter(NeverMarksAdapter):
    """Sends ``comment_mention`` itself for the reply it saves, claiming depth 0."""

    def save_reply(self, run: AgentRun, text: str) -> Any:
        reply = super().save_reply(run, text)
        comment_mention.send(sender=Comment, comment=reply, agent_ids=["athena", "klyve"])
        return reply


class ScopedAdapter(DefaultCommentAdapter):
    """Handles only the comments of tasks listed in ``task_ids`` (no query to tell)."""

    task_ids: ClassVar[set[int]] = set()

    def handles(self, comment: Any) -> bool:
        return comment.task_id in self.task_ids
