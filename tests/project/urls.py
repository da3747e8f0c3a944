"""A URLconf for the task-page tests: the admin and the task pages (with sign-in).

Independent of ``project.urls`` so that these tests do not depend on what else the
example project mounts.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("project.tasks.urls")),
]
