"""Fixtures for the example project's pages.

Like ``tests/django``: every test starts from the embedded default whatever the
environment says (an in-memory channel layer, a private local-memory cache, eager
Celery), and the pages are served by this package's small URLconf.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.stacks import eager_celery, use_embedded_default


@pytest.fixture(autouse=True)
def embedded_default(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = "tests.project.urls"
    use_embedded_default(settings)
    with eager_celery():
        yield


@pytest.fixture
def client_in(user: Any) -> Client:
    """A test client signed in as ``user``, with CSRF checks on (as a browser has them)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client
