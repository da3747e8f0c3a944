"""The run ledger: one :class:`AgentRun` per mention of one agent in one comment.

Every mention ends in exactly one of: a saved reply (``replied``), a visible failure
with a reason (``failed``), a visible stop (``stopped``), or a visible refusal
(``refused``: never sent, because the loop backstop said no). Status changes happen
only through :mod:`relaybridge.services`, as conditional updates.

:class:`ThreadHopGate` is one row per thread whose agents have asked each other
something: the row is locked while that thread's recent agent hops are counted, so
two hops at once cannot both slip past the backstop.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage
from django.db import models
from django.utils import timezone

from .comment_model import comment_model_problem, foreign_key_target

COMMENT_MODEL_SETTING = "RELAYBRIDGE_COMMENT_MODEL"


class CommentForeignKey(models.ForeignKey):  # type: ignore[type-arg]
    """A foreign key to the host's comment model, named by ``RELAYBRIDGE_COMMENT_MODEL``.

    Declared swappable the way ``AUTH_USER_MODEL`` references are, so migrations
    refer to the setting (``to=settings.RELAYBRIDGE_COMMENT_MODEL`` plus a
    ``swappable_dependency``) rather than to the example project's model.
    """

    @property
    def swappable_setting(self) -> str | None:
        return COMMENT_MODEL_SETTING

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        # A model the setting names but no app defines is reported by relaybridge.E003
        # (with the remedy); Django adds its lazy-reference error, once per field.
        if comment_model_problem() is not None:
            return []
        return super().check(**kwargs)

    def deconstruct(self) -> tuple[str, str, list[object], dict[str, object]]:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.ForeignKey", list(args), kwargs


class AgentRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        ACCEPTED = "accepted", "Accepted"
        STREAMING = "streaming", "Streaming"
        REPLIED = "replied", "Replied"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"
        #: Never sent: the loop backstop (or another limit) said no; the reason is kept.
        REFUSED = "refused", "Refused"

    id = models.BigAutoField(primary_key=True)
    #: Our reference, also sent inside the payload as ``relaybridge_run``.
    run_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    comment = CommentForeignKey(
        foreign_key_target(), on_delete=models.CASCADE, related_name="relaybridge_runs"
    )
    agent_id = models.CharField(max_length=100)
    #: Relay's thread id (e.g. ``task-42``) and relaybridge's group key for the thread.
    thread_id = models.CharField(max_length=255)
    thread_key = models.CharField(max_length=200)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="relaybridge_runs",
    )
    #: 0 when a person asked; n when the mention came from an agent's reply n hops away.
    hop_depth = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    #: Relay's id for the event, set on ``accepted``. NULL (not "") until then, so
    #: that the unique constraint only applies to real ids.
    event_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    attempts = models.PositiveIntegerField(default=0)
    #: Every attempt sent, and why: ``[{"attempt": 1, "reason": "mention", "at": ...}]``;
    #: ``reason`` is the error code that led to it (``RELAYBRIDGE_CONNECTION_LOST``
    #: for an answer lost with its connection and asked again), or how it began.
    attempt_log = models.JSONField(default=list, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    payload = models.JSONField(null=True, blank=True)
    #: The streamed text kept when a run fails or is stopped mid-stream.
    partial_text = models.TextField(blank=True, default="")
    reply_comment = CommentForeignKey(
        foreign_key_target(),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    #: The reply comment's sanitized HTML, rendered when it was saved, and the
    #: :func:`~relaybridge.rendering.render_digest` of the text it was rendered
    #: from: pages reuse it while the digest still matches (see relaybridge.rendered).
    reply_html = models.TextField(blank=True, default="")
    reply_digest = models.CharField(max_length=64, blank=True, default="")
    tokens_used = models.PositiveIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=200, blank=True, default="")
    relay_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    #: Our time from sending the event to its first token.
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "agent run"
        ordering = ("-queued_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["comment", "agent_id"], name="relaybridge_run_once_per_comment_agent"
            ),
            models.UniqueConstraint(
                fields=["event_id"],
                condition=models.Q(event_id__isnull=False),
                name="relaybridge_run_unique_event_id",
            ),
        ]
        indexes = [
            # The worker's sweeps: stalled, stranded and due runs by status and age.
            models.Index(fields=["status", "updated_at"], name="relaybridge_status_updated"),
            models.Index(fields=["status", "next_attempt_at"], name="relaybridge_status_next"),
            # A page's snapshot: the active runs of one thread.
            models.Index(fields=["thread_key", "status"], name="relaybridge_thread_status"),
        ]

    def __str__(self) -> str:
        return f"@{self.agent_id} on {self.thread_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset(
    {
        AgentRun.Status.QUEUED,
        AgentRun.Status.SENDING,
        AgentRun.Status.ACCEPTED,
        AgentRun.Status.STREAMING,
        AgentRun.Status.RETRYING,
    }
)


class ThreadHopGate(models.Model):
    """The lock a thread's agent hops are counted under (see services.backstop)."""

    id = models.BigAutoField(primary_key=True)
    thread_key = models.CharField(max_length=200, unique=True)
    #: When a hop last took the lock; written to take it (an UPDATE locks on every database).
    locked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "thread hop gate"

    def __str__(self) -> str:
        return self.thread_key
