from __future__ import annotations

from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Tasks and comments of the example project (app label ``tasks``)."""

    name = "project.tasks"
    label = "tasks"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"
