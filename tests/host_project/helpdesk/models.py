"""A ticket and its messages: the thread and the comment model relaybridge is pointed at."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.db import models

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


class Ticket(models.Model):
    title = models.CharField(max_length=200)
    # Annotations only: mypy's Django plugin reads the example project's settings, where
    # this app is not installed, so it cannot add the reverse relation itself.
    messages: RelatedManager[Message]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    agent_id = models.CharField(max_length=100, blank=True, default="")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Django's own default manager; annotated because the plugin does not see this app.
    objects: ClassVar[models.Manager[Message]]

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return self.text[:50]
