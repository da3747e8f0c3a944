"""``manage.py run_demo``: the embedded default in one process, ready in seconds.

Migrates the database, seeds the demo data (``seed_demo``, when the project has
it), then serves the site with Daphne and runs the relay worker on the same event
loop, so that the in-memory channel layer connects them. Without
``RELAY_APP_TOKEN`` the worker talks to the local Relay emulator and its scripted
agents; with it, to the real Relay. Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from relaybridge.worker.launch import WorkerRun

logger = logging.getLogger("relaybridge.demo")


class Command(BaseCommand):
    help = "Run the one-process demo: web server, relay worker and tasks together."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Port (default 8000).")
        parser.add_argument(
            "--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1)."
        )
        parser.add_argument(
            "--no-seed", action="store_true", help="Do not create the demo user and tasks."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity: int = options["verbosity"]
        seeded = False
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        if not options["no_seed"]:
            if "seed_demo" in get_commands():
                call_command("seed_demo", verbosity=verbosity)
                seeded = True
            else:
                self.stdout.write("this project has no seed_demo command; not seeding")
        # The main thread is about to run the event loop: no sync DB use from here on.
        connections.close_all()
        self._warn_about_setup()

        from relaybridge.demo import EmbeddedServer

        login = "  (log in as demo / demo)" if seeded else ""

        def ready(url: str, worker: WorkerRun) -> None:
            self.stdout.write(f"relaybridge demo: {url}{login}")
            self.stdout.write("Press Ctrl-C to stop.")
            self.stdout.flush()

        def stopping() -> None:
            self.stdout.write("stopping: letting in-flight runs finish…")
            self.stdout.flush()

        server = EmbeddedServer(
            _application(),
            host=options["host"],
            port=options["port"],
            on_ready=ready,
            on_stopping=stopping,
        )
        if not server.run():
            raise CommandError("the demo stopped because of an error (see the log above)")
        self.stdout.write("relaybridge demo stopped")

    def _warn_about_setup(self) -> None:
        from relaybridge.tasks import dispatch_run

        backend = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
        if not backend.endswith("InMemoryChannelLayer"):
            self.stdout.write(f"note: channel layer {backend}; other processes may share it")
        if not dispatch_run.app.conf.task_always_eager:
            self.stdout.write("note: Celery is not eager here; run a Celery worker as well")


def _application() -> Any:
    """The project's ASGI application, serving static files in DEBUG like runserver."""
    from channels.routing import get_default_application
    from django.apps import apps

    application = get_default_application()
    if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        return ASGIStaticFilesHandler(application)
    return application
