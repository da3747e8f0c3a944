"""The example project's Celery app.

Configuration comes from Django settings with the ``CELERY_`` prefix: without
``REDIS_URL`` tasks run in-process (the embedded default), with it they go through
the Redis broker to ``celery -A project worker``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
