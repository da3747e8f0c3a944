"""URLs of the example host project.

The admin holds the run ledger; the task pages are added next to it.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
]
