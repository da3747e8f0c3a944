"""``manage.py relay_status``: what the relay worker is doing right now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from relaybridge.worker.status import read_status


class Command(BaseCommand):
    help = "Show the relay worker's connection status (from the cache it reports to)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--exit-code",
            action="store_true",
            help="Exit 1 when no worker is running, 2 when Relay rejects the app token.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        status = read_status()
        if status is None:
            self.stdout.write(
                self.style.WARNING("No relay worker is running (no status record in the cache).")
            )
            self.stdout.write("Start one with: python manage.py relay_worker")
            if options["exit_code"]:
                raise SystemExit(1)
            return
        style = self.style.ERROR if status.auth_failed else self.style.SUCCESS
        lines = status.describe()
        self.stdout.write(style(lines[0]))
        for line in lines[1:]:
            self.stdout.write(line)
        if status.auth_failed:
            self.stdout.write(
                self.style.ERROR(
                    "Check RELAY_APP_TOKEN; tokens are managed in Relay's dashboard: "
                    "https://relay.ckgworks.com"
                )
            )
            if options["exit_code"]:
                raise SystemExit(2)
