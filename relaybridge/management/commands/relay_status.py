"""``manage.py relay_status``: what the relay worker is doing right now.

After the worker's status: the quotas and agent permissions in force, and today's
top users of each agent (one query on the run ledger).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from relaybridge.conf import relay_settings
from relaybridge.quotas import quota_rules
from relaybridge.usage import top_users
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
            self.write_admission()
            if options["exit_code"]:
                raise SystemExit(1)
            return
        style = self.style.ERROR if status.auth_failed else self.style.SUCCESS
        lines = status.describe()
        self.stdout.write(style(lines[0]))
        for line in lines[1:]:
            self.stdout.write(line)
        self.write_admission()
        if status.auth_failed:
            self.stdout.write(
                self.style.ERROR(
                    "Check RELAY_APP_TOKEN; tokens are managed in Relay's dashboard: "
                    "https://relay.ckgworks.com"
                )
            )
            if options["exit_code"]:
                raise SystemExit(2)

    def write_admission(self) -> None:
        """The quotas and permissions in force, and today's top users of each agent."""
        self.stdout.write("")
        try:
            rules = quota_rules()
        except ValueError as exc:
            self.stdout.write(self.style.ERROR(f"RELAYBRIDGE_QUOTAS cannot be read: {exc}"))
            rules = []
        if rules:
            self.stdout.write("quotas in force:")
            for rule in rules:
                self.stdout.write(f"  {rule.describe()}")
        else:
            self.stdout.write("quotas in force: none (RELAYBRIDGE_QUOTAS)")
        permissions = relay_settings.AGENT_PERMISSIONS
        if permissions:
            self.stdout.write("agent permissions:")
            for agent_id, perm in sorted(permissions.items()):
                self.stdout.write(f"  @{agent_id} needs {perm}")
        top = top_users()
        if not top:
            self.stdout.write("today's top users: no runs today")
            return
        self.stdout.write("today's top users:")
        for agent_id, people in sorted(top.items()):
            names = ", ".join(f"{row.key} ({row.runs} runs, {row.tokens} tokens)" for row in people)
            self.stdout.write(f"  @{agent_id}: {names}")
