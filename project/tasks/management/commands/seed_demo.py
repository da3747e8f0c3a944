"""``manage.py seed_demo``: the demo login and a few tasks to talk about.

Idempotent: running it again resets the demo password and adds nothing twice.
The seeded comments mention no agents, so seeding never starts a run.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from project.tasks.models import Comment, Task

DEMO_TASKS: list[tuple[str, str, list[str]]] = [
    (
        "Q2 Roadmap Review",
        "Go through the Q2 roadmap and agree on the three themes we commit to.",
        [
            "I moved the billing revamp to Q3; it depends on the new tax provider.",
            "Mobile offline mode is still the most requested feature in support tickets.",
        ],
    ),
    (
        "Onboarding checklist for new engineers",
        "Collect everything a new engineer needs in their first week.",
        ["Access requests take two days, so they should go out before day one."],
    ),
    (
        "Incident 2024-05-14: search latency",
        "Search p95 went from 300 ms to 4 s for forty minutes.",
        [
            "Root cause: a missing index after the tags migration.",
            "Action item: add a migration check to CI.",
        ],
    ),
]


class Command(BaseCommand):
    help = "Create the demo user (demo/demo) and a few tasks with comments."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            user = self._demo_user()
            created = 0
            for title, description, comments in DEMO_TASKS:
                task, is_new = Task.objects.get_or_create(
                    title=title, defaults={"description": description}
                )
                if is_new:
                    created += 1
                    for body in comments:
                        Comment.objects.create(task=task, author=user, body=body)
        self.stdout.write(f"demo user ready (demo/demo); {created} new task(s)")

    def _demo_user(self) -> Any:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="demo")
        # Staff so that the demo can show the run ledger in the admin.
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password("demo")
        user.save()
        return user
