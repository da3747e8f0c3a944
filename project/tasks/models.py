"""Tasks and their comments.

A comment is written either by a person (``author`` set, ``agent_id`` blank) or by
an agent (``author`` NULL, ``agent_id`` set); relaybridge's default adapter relies
on exactly these fields.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Task(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return self.title


class Comment(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="task_comments",
    )
    agent_id = models.CharField(
        max_length=100, blank=True, default="", help_text="Set when an agent wrote this."
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "pk")
        constraints = [
            # A comment has one kind of author: a person or an agent, never both.
            models.CheckConstraint(
                condition=models.Q(agent_id="") | models.Q(author__isnull=True),
                name="tasks_comment_person_or_agent",
            )
        ]

    def __str__(self) -> str:
        who = self.agent_id or (self.author.get_username() if self.author else "someone")
        return f"Comment by {who} on task {self.task_id}"

    @property
    def is_agent(self) -> bool:
        return bool(self.agent_id)
