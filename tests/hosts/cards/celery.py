"""The cards host's Celery app: ``celery -A tests.hosts.cards.celery worker``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.hosts.cards.settings")

app = Celery("cards_host")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
