"""A second host project: cards commented on with django-contrib-comments.

It uses relaybridge's shipped ``DjangoCommentsAdapter`` with settings alone (see
``settings.py``): no adapter code, no marker model, no field for agents. Importing
the package loads its Celery app, so that ``shared_task`` tasks bind to it.

Run its Django tests with ``pytest --ds tests.hosts.cards.settings tests/hosts/cards``
(the main suite does so in a subprocess: ``tests/hosts/test_cards_host.py``).
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
