"""The system check of DjangoCommentsAdapter (relaybridge.E003) on the cards host."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command

from relaybridge.adapters import get_adapter


def relaybridge_errors() -> list[str]:
    return [
        message.msg
        for message in checks.run_checks(tags=["relaybridge"])
        if message.level >= checks.ERROR
    ]


def test_the_cards_host_passes_its_checks() -> None:
    assert relaybridge_errors() == []


def test_a_comment_model_other_than_django_comments_is_reported(settings: Any) -> None:
    settings.RELAYBRIDGE_COMMENT_MODEL = "cards.Card"
    (error,) = relaybridge_errors()
    assert "RELAYBRIDGE_COMMENT_MODEL is 'cards.Card'" in error
    assert "'django_comments.Comment'" in error


def test_a_scope_naming_no_installed_model_is_reported(settings: Any) -> None:
    settings.RELAYBRIDGE_DJANGO_COMMENTS_MODELS = ["cards.card", "cards.cart", "nonsense"]
    errors = relaybridge_errors()
    assert len(errors) == 2, errors
    assert "'cards.cart', which is not an installed model" in errors[0]
    assert "'nonsense', which is not an installed model" in errors[1]


def test_a_scope_that_is_not_a_list_is_reported(settings: Any) -> None:
    settings.RELAYBRIDGE_DJANGO_COMMENTS_MODELS = "cards.card"
    (error,) = relaybridge_errors()
    assert "must be a list of 'app_label.model_name'" in error


def test_missing_apps_are_reported(settings: Any) -> None:
    leaving = ("django_comments", "django.contrib.sites")
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app not in leaving]
    problems = get_adapter().check()
    assert len(problems) == 2, problems
    assert problems[0].startswith("django_comments (pip install relaybridge[django-comments])")
    assert problems[1].startswith("django.contrib.sites")


@pytest.mark.django_db
def test_the_cards_host_has_every_migration_it_needs() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
