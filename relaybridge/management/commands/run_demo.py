"""``manage.py run_demo``: the example project's demo in one process, ready in seconds.

Migrates the database, seeds the demo data (``seed_demo``, when the project has
it), then does what ``relay_devserver`` does: serves the site with Daphne and runs
the relay worker on the same event loop, so that the in-memory channel layer
connects them. Without ``RELAY_APP_TOKEN`` the worker talks to the local Relay
emulator and its scripted agents; with it, to the real Relay. Ctrl-C stops everything.
"""

from __future__ import annotations

from typing import Any

from django.core.management import call_command, get_commands
from django.core.management.base import CommandError, CommandParser
from django.db import connections
from django.utils.translation import gettext as _

from relaybridge.demo import DaphneMissing, require_daphne

from .relay_devserver import Command as DevServerCommand


class Command(DevServerCommand):
    help = _("Run the one-process demo: migrate, seed, then serve as relay_devserver does.")
    server_name = "relaybridge demo"
    seeded = False

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-seed", action="store_true", help=_("Do not create the demo user and tasks.")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            require_daphne()
        except DaphneMissing as exc:
            raise CommandError(str(exc)) from exc
        verbosity: int = options["verbosity"]
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        if not options["no_seed"]:
            if "seed_demo" in get_commands():
                call_command("seed_demo", verbosity=verbosity)
                self.seeded = True
            else:
                self.stdout.write(_("this project has no seed_demo command; not seeding"))
        # The main thread is about to run the event loop: no sync DB use from here on.
        connections.close_all()
        self.serve(options["host"], options["port"])

    def ready_line(self, url: str) -> str:
        login = _("  (log in as demo / demo)") if self.seeded else ""
        return super().ready_line(url) + login
