"""relaybridge's HTTP URLs; the host includes them, e.g. under ``relaybridge/``."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import feedback, views

app_name = "relaybridge"

urlpatterns: list[URLPattern] = [
    path("runs/<uuid:run_id>/retry/", views.retry_run, name="retry-run"),
    path("runs/<uuid:run_id>/stop/", views.stop_run, name="stop-run"),
    path("runs/<uuid:run_id>/feedback/", feedback.reply_feedback_view, name="reply-feedback"),
    path("mentions/preview/", views.mention_preview, name="mention-preview"),
]
