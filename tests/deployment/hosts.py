"""The host projects a deployment can run: which settings, ASGI app and Celery app.

Every process of a deployment gets the host's settings module; ``celery -A`` and
``daphne`` get its Celery and ASGI applications; ``manage.py`` reads the settings
module from the environment. The example project is the default host.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Host:
    name: str
    #: The settings of every process: the host's own, plus the tests' timing settings.
    settings_module: str
    asgi_application: str
    celery_app: str
    #: The management command that creates the host's demo data (idempotent).
    seed_command: str
    #: A page any visitor can load, to know Daphne is serving.
    ready_path: str = "/accounts/login/"


EXAMPLE = Host(
    name="example",
    settings_module="tests.deployment.settings",
    asgi_application="project.asgi:application",
    celery_app="project",
    seed_command="seed_demo",
)

#: django-contrib-comments on cards (tests/hosts/cards), through DjangoCommentsAdapter.
CARDS = Host(
    name="cards",
    settings_module="tests.hosts.cards.deployment_settings",
    asgi_application="tests.hosts.cards.asgi:application",
    celery_app="tests.hosts.cards.celery",
    seed_command="seed_cards",
)
