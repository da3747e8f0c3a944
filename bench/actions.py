"""What people do, done by the driver through the ORM: tasks and mention comments.

A comment saved here goes through ``post_save`` exactly as one posted on the page:
mentions are parsed, a run is created and ``dispatch_run`` is queued to Celery.
These are sync functions; the scenarios call them in worker threads.
"""

from __future__ import annotations

import time
from typing import Any

_author: Any = None


def author() -> Any:
    global _author
    if _author is None:
        from django.contrib.auth import get_user_model

        _author = get_user_model().objects.get(username="demo")
    return _author


def person(username: str) -> Any:
    """Another person (created once), for scenarios where more than one asks."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=username)
    return user


def create_tasks(count: int, title: str) -> list[int]:
    from project.tasks.models import Task

    tasks = [Task(title=f"{title} #{n}", description="Benchmark task.") for n in range(count)]
    return [task.pk for task in Task.objects.bulk_create(tasks)]


def mention(task_id: int, body: str, by: Any = None) -> tuple[int, int]:
    """Comment ``body`` on the task (as the demo user, or ``by``);
    ``(comment id, wall-clock ns just before saving)``."""
    from project.tasks.models import Comment

    user = by if by is not None else author()
    started = time.time_ns()
    comment = Comment.objects.create(task_id=task_id, author=user, body=body)
    return comment.pk, started


def close_connections() -> None:
    from django.db import connections

    connections.close_all()
