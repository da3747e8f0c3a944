"""URLs of the example host project.

The admin holds the run ledger; relaybridge's Retry/Stop buttons post under
``relaybridge/``; the task pages and sign-in live at the root.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("relaybridge/", include("relaybridge.urls")),
    path("", include("project.tasks.urls")),
]
