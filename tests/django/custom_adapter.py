"""A second host adapter, written against the base class only, for the plug-in tests.

It reads the same models as the default adapter but names threads its own way and
lets only staff watch them.
"""

from __future__ import annotations

from typing import Any

from project.tasks.models import Comment, Task
from relaybridge.adapters import CommentAdapter, HistoryEntry, Sender
from relaybridge.models import AgentRun


class BoardAdapter(CommentAdapter):
    def text(self, comment: Any) -> str:
        return str(comment.body)

    def thread_for(self, comment: Any) -> Any:
        return comment.task

    def thread_id(self, thread: Any) -> str:
        return f"board:{thread.pk}"

    def thread_key(self, thread: Any) -> str:
        return f"board-{thread.pk}"

    def thread_by_key(self, key: str) -> Any | None:
        number = key.removeprefix("board-")
        return Task.objects.filter(pk=int(number)).first() if number.isdigit() else None

    def thread_title(self, thread: Any) -> str:
        return f"[Board] {thread.title}"

    def sender(self, comment: Any) -> Sender:
        return Sender(id=comment.agent_id or str(comment.author_id), name="someone")

    def is_agent_comment(self, comment: Any) -> str | None:
        return comment.agent_id or None

    def requested_by(self, comment: Any) -> Any | None:
        return comment.author

    def history(self, comment: Any, limit: int) -> list[HistoryEntry]:
        return [HistoryEntry(author="board", text="(history is private)")]

    def can_view(self, user: Any, thread: Any) -> bool:
        return bool(user.is_active and user.is_staff)

    def save_reply(self, run: AgentRun, text: str) -> Any:
        return Comment.objects.create(task=run.comment.task, agent_id=run.agent_id, body=text)


class NotAnAdapter:
    pass
