"""The run ledger: one :class:`AgentRun` per mention of one agent in one comment and revision.

An edited question asked again, or a Regenerate, is the next ``revision`` of the
same (comment, agent); the database keeps each revision to one run.

Every mention ends in exactly one of: a saved reply (``replied``), a visible failure
with a reason (``failed``), a visible stop (``stopped``), or a visible refusal
(``refused``: never sent, because the person may not call the agent, a quota is
reached, or the loop backstop said no). Status changes happen
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
        #: Never sent: admission (permission, quota) or the loop backstop said no; the
        #: reason is kept.
        REFUSED = "refused", "Refused"

    id = models.BigAutoField(primary_key=True)
    #: Our reference, also sent inside the payload as ``relaybridge_run``.
    run_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    #: The comment that asked; NULL once it is deleted (the ledger keeps the run, and
    #: ``question_excerpt`` keeps what was asked).
    comment = CommentForeignKey(
        foreign_key_target(),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="relaybridge_runs",
    )
    agent_id = models.CharField(max_length=100)
    #: 1 for the first run of an agent on a comment; each edit asked again or each
    #: Regenerate makes the next one (see relaybridge.revisions).
    revision = models.PositiveIntegerField(default=1)
    #: :func:`relaybridge.questions.question_digest` of the comment's text when the
    #: run was created ("" for runs from before revisions): an edit is a save whose
    #: text no longer matches it.
    question_digest = models.CharField(max_length=64, blank=True, default="")
    #: The start of the question, redacted: kept when the comment is deleted.
    question_excerpt = models.CharField(max_length=200, blank=True, default="")
    #: The run whose reply this run answers again (the Regenerate button).
    regenerates = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="regenerations",
    )
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
    #: The person whose permissions and quotas the run is checked against: who asked,
    #: or for a run agents' replies led to, the person at the start of the chain.
    charged_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
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
    #: Who last pressed Stop and Retry on the run, and when (None: nobody yet).
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    stopped_at = models.DateTimeField(null=True, blank=True)
    retried_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "agent run"
        ordering = ("-queued_at", "-id")
        permissions = [
            # Beside the asker and staff: who may Stop and Retry anyone's run.
            ("control_agentrun", "Can stop and retry any agent run"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["comment", "agent_id", "revision"], name="relaybridge_run_once_per_revision"
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
            # Quotas and the usage page: a person's, an agent's, a thread's runs by time.
            models.Index(fields=["charged_to", "queued_at"], name="relaybridge_charged_queued"),
            models.Index(fields=["agent_id", "queued_at"], name="relaybridge_agent_queued"),
            models.Index(fields=["thread_key", "queued_at"], name="relaybridge_thread_queued"),
            models.Index(fields=["queued_at"], name="relaybridge_queued"),
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


class QuotaGate(models.Model):
    """The lock one quota counter is read under (see relaybridge.quotas).

    One row per counted key (``person:42:*``, ``agent:athena:athena``, …): the rows a
    mention's quotas need are locked in sorted order (``SELECT … FOR UPDATE``) while
    their runs are counted and the new runs inserted, so two posts at once cannot
    both take the last run a limit allows.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=300, unique=True)
    locked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "quota gate"

    def __str__(self) -> str:
        return self.key


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


#: The longest note a person may leave with a vote on an agent's reply.
FEEDBACK_NOTE_MAX_CHARS = 500


class ReplyFeedback(models.Model):
    """One person's vote on one agent reply (its run): one per person and run, changeable."""

    class Vote(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="relaybridge_feedback"
    )
    vote = models.CharField(max_length=4, choices=Vote.choices)
    note = models.CharField(max_length=FEEDBACK_NOTE_MAX_CHARS, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "reply feedback"
        verbose_name_plural = "reply feedback"
        ordering = ("-updated_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "user"], name="relaybridge_feedback_once_per_run_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vote} on {self.run_id} by {self.user_id}"
