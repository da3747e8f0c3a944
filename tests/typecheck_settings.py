"""The settings mypy's Django plugin reads: the example project's, plus the cards host's app.

The plugin types a model's managers and reverse relations only for apps in
``INSTALLED_APPS``; the tests also drive the cards host (django_comments on cards and
boards), so its app and the sites framework it needs are added here. Nothing runs
with these settings.
"""

from __future__ import annotations

from tests.project_settings import *  # noqa: F403
from tests.project_settings import INSTALLED_APPS as PROJECT_APPS

INSTALLED_APPS = [
    *PROJECT_APPS,
    "django.contrib.sites",
    "django_comments",
    "tests.hosts.cards.cards",
]
SITE_ID = 1
