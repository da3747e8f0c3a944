"""Fixtures of the cards host's tests: the embedded default, a person, a card, a board."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import django_comments
import pytest
from django.conf import settings as django_settings

from tests.stacks import eager_celery, use_embedded_default

from ..cards.models import Board, Card


@pytest.fixture(autouse=True)
def embedded_default(settings: Any) -> Iterator[None]:
    use_embedded_default(settings)
    with eager_celery():
        yield


@pytest.fixture
def card(db: None) -> Card:
    return Card.objects.create(title="Launch checklist", description="What must be true.")


@pytest.fixture
def board(db: None) -> Board:
    return Board.objects.create(name="Launch")


MakeComment = Callable[..., Any]


@pytest.fixture
def make_comment(card: Card, user: Any) -> MakeComment:
    """A django_comments comment on ``card`` by ``user`` (or on/by what the test says)."""

    def make(text: str, **fields: Any) -> Any:
        fields.setdefault("content_object", card)
        fields.setdefault("user", user)
        fields.setdefault("site_id", django_settings.SITE_ID)
        return django_comments.get_model().objects.create(comment=text, **fields)

    return make
