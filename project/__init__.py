"""The example host project for relaybridge.

Importing the package loads the Celery app so that ``shared_task`` tasks bind to it
and ``celery -A project worker`` finds it.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
