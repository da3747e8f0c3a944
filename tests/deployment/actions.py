"""What a person does, run inside the project with the test's environment.

``python -m tests.deployment.actions mention '<json>'`` creates one task per
entry and a comment on it through the ORM, so that ``post_save`` fires exactly as
it does for a comment posted on the page: mentions are parsed, runs created and
``dispatch_run`` queued to the real broker after commit. It prints the ids it
created as one JSON line, which is all the test reads from it.

The JSON is a list of ``{"title": …, "body": …}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def mention(specs: list[dict[str, str]]) -> list[dict[str, int]]:
    from django.contrib.auth import get_user_model

    from project.tasks.models import Comment, Task

    user, _ = get_user_model().objects.get_or_create(
        username="alice", defaults={"first_name": "Alice", "last_name": "Ng"}
    )
    created = []
    for spec in specs:
        task = Task.objects.create(title=spec["title"], description="Created by a test.")
        # Autocommit: the comment's save commits at once, so on_commit queues the
        # dispatch before the next comment is written.
        comment = Comment.objects.create(task=task, author=user, body=spec["body"])
        created.append({"task_id": task.pk, "comment_id": comment.pk})
    return created


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "mention":
        print("usage: python -m tests.deployment.actions mention '<json>'", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.deployment.settings")
    import django

    django.setup()
    specs: Any = json.loads(argv[2])
    print(json.dumps(mention(specs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
