"""A host project: loads its Celery app so relaybridge's shared task binds to it."""

from .celery import app as celery_app

__all__ = ("celery_app",)
