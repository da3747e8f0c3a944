"""A ticket and its messages: the thread and the comment model relaybridge is pointed at."""

from django.conf import settings
from django.db import models


class Ticket(models.Model):
    title = models.CharField(max_length=200)

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

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return self.text[:50]
