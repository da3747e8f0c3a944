"""What the fault scenarios do inside the project, from a process with the deployment's settings.

``python -m tests.reliability.actions dispatch RUN_ID [RUN_ID …]`` queues
``relaybridge.dispatch_run`` through the real broker once per id given, so naming
an id twice delivers the same task twice, as a broker redelivery would.

``python -m tests.reliability.actions comment '<json>'`` adds a comment by a person
to existing tasks (``[{"task_id": …, "body": …}]``) through the ORM, so mentions are
made exactly as on the page, and prints the new ids as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def dispatch(run_ids: list[str]) -> int:
    from project.celery import app
    from relaybridge.tasks import dispatch_run

    with app.connection_for_write() as connection:
        for run_id in run_ids:
            # celery-types does not declare apply_async's connection option.
            dispatch_run.apply_async((run_id,), connection=connection)  # type: ignore[call-arg]
    return len(run_ids)


def comment(specs: list[dict[str, Any]]) -> list[dict[str, int]]:
    from django.contrib.auth import get_user_model

    from project.tasks.models import Comment

    user, _ = get_user_model().objects.get_or_create(username="alice")
    created = []
    for spec in specs:
        made = Comment.objects.create(task_id=spec["task_id"], author=user, body=spec["body"])
        created.append({"task_id": made.task_id, "comment_id": made.pk})
    return created


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in {"dispatch", "comment"}:
        print("usage: python -m tests.reliability.actions dispatch RUN_ID …", file=sys.stderr)
        print("       python -m tests.reliability.actions comment '<json>'", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.deployment.settings")
    import django

    django.setup()
    if argv[1] == "dispatch":
        print(dispatch(argv[2:]))
    else:
        print(json.dumps(comment(json.loads(argv[2]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
