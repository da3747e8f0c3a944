"""relaybridge.contrib.django_comments in a project without django-contrib-comments."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.template import Context, Template, TemplateSyntaxError

from relaybridge.contrib.django_comments import DjangoCommentsAdapter


def test_the_example_project_loads_the_tag_library_without_django_comments() -> None:
    assert not apps.is_installed("django_comments")
    template = Template("{% load relaybridge_comments %}{% relaybridge_agent_authors comments %}")
    with pytest.raises(TemplateSyntaxError, match="needs RELAYBRIDGE_ADAPTER to be a Django"):
        template.render(Context({"comments": []}))


def test_the_adapter_names_what_is_missing_when_django_comments_is_not_installed() -> None:
    problems = DjangoCommentsAdapter().check()
    assert problems == [
        "django_comments (pip install relaybridge[django-comments]) is not in INSTALLED_APPS; "
        "DjangoCommentsAdapter needs it",
        "django.contrib.sites (django_comments needs it) is not in INSTALLED_APPS; "
        "DjangoCommentsAdapter needs it",
    ]
