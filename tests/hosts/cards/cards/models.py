"""A card and a board, both commented on through django_comments' generic relation.

Neither knows about relaybridge or agents: comments on cards call agents because
``RELAYBRIDGE_DJANGO_COMMENTS_MODELS`` names ``cards.card``; comments on boards
do not.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class Board(models.Model):
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class Card(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("card_detail", args=[self.pk])
