"""``manage.py seed_cards``: the demo login (demo/demo), a card and a board.

Idempotent. The seeded comment mentions no agent, so seeding never starts a run.
"""

from __future__ import annotations

from typing import Any

import django_comments
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from ...models import Board, Card


class Command(BaseCommand):
    help = "Create the demo user, a card with a comment, and a board."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username="demo",
            defaults={"first_name": "Dana", "last_name": "Demo", "email": "demo@example.com"},
        )
        user.set_password("demo")
        user.save()
        card, created = Card.objects.get_or_create(
            title="Launch checklist", defaults={"description": "What must be true on launch day."}
        )
        if created:
            django_comments.get_model().objects.create(
                content_object=card,
                site_id=settings.SITE_ID,
                user=user,
                comment="The status page still points at the old domain.",
            )
        Board.objects.get_or_create(name="Launch")
        self.stdout.write(f"card {card.pk}")
