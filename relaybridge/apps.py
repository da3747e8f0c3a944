"""relaybridge's AppConfig: ``ready()`` only registers checks, signal receivers and tasks."""

from __future__ import annotations

from django.apps import AppConfig


class RelayBridgeConfig(AppConfig):
    name = "relaybridge"
    verbose_name = "Relay bridge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,
            receivers,
            socket_guard,
            tasks,  # noqa: F401  (registers dispatch_run, which services queue by name)
        )

        checks.register_checks()
        receivers.connect_receivers()
        socket_guard.connect_receivers()
