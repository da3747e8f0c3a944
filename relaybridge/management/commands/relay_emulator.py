"""``manage.py relay_emulator``: run the local Relay from a Django project.

Takes the same options as ``python -m relaybridge.emulator``. Without
``--app-token`` it accepts the project's ``RELAY_APP_TOKEN`` (when set), so the
host project and the emulator agree on the credential with no extra setup.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from relaybridge.emulator.cli import add_arguments, config_from_args, run


class Command(BaseCommand):
    help = "Run a local Relay emulator (app and agent WebSocket endpoints, scripted agents)."
    # The emulator stands in for Relay and uses nothing of the project; the
    # project's own checks (e.g. a missing RELAY_APP_TOKEN) must not stop it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        parser = ArgumentParser()
        add_arguments(parser)
        # Rebuild a namespace with only the emulator's options, whatever Django adds.
        namespace = parser.parse_args([])
        for name in vars(namespace):
            if name in options:
                setattr(namespace, name, options[name])
        try:
            config = config_from_args(namespace, os.environ)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        run(config, namespace.log_level, self.stdout)
