"""The test URLconf plus relaybridge's own URLs, mounted somewhere unusual."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from .urls import urlpatterns as base_patterns

urlpatterns: list[URLPattern | URLResolver] = [
    *base_patterns,
    path("hooks/bridge/", include("relaybridge.urls")),
]
