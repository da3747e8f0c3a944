"""``manage.py relay_devserver``: the site and the relay worker in one process, for development.

For any host project. Serves the project's ASGI application with Daphne (its static
files too while ``DEBUG`` is on, as ``runserver`` does) and runs the relay worker on
the same event loop, so that the in-memory channel layer connects the two; without
``RELAY_APP_TOKEN`` the worker talks to the local Relay emulator and its scripted
agents. Celery should be eager (``CELERY_TASK_ALWAYS_EAGER = True``) unless a Celery
worker runs as well. It neither migrates nor creates data (``run_demo`` adds both for
the example project). Ctrl-C drains the worker and stops; a second Ctrl-C stops at once.

Needs Daphne: ``pip install "relaybridge[daphne]"``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.translation import gettext as _

from relaybridge.demo import DaphneMissing, require_daphne
from relaybridge.worker.launch import WorkerRun


class Command(BaseCommand):
    help = _(
        "Serve the project, the relay worker and (without RELAY_APP_TOKEN) the local Relay "
        "emulator in one process, for development."
    )
    #: What the line that announces the address starts with ("<name>: http://…").
    server_name = "relaybridge dev server"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help=_("Port (default 8000)."))
        parser.add_argument(
            "--host", default="127.0.0.1", help=_("Interface to listen on (default 127.0.0.1).")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            require_daphne()
        except DaphneMissing as exc:
            raise CommandError(str(exc)) from exc
        self.require_relaybridge_tables()
        self.check_migrations()
        # The main thread is about to run the event loop: no sync DB use from here on.
        connections.close_all()
        self.serve(options["host"], options["port"])

    def require_relaybridge_tables(self) -> None:
        """Stop now, not at the worker's first query, when relaybridge is not migrated."""
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if any(migration.app_label == "relaybridge" for migration, _backwards in plan):
            raise CommandError(
                _(
                    "relaybridge's tables do not exist yet: run `python manage.py migrate` "
                    "first (with RELAYBRIDGE_COMMENT_MODEL set)."
                )
            )

    def ready_line(self, url: str) -> str:
        return f"{self.server_name}: {url}"

    def serve(self, host: str, port: int) -> None:
        from relaybridge.demo import EmbeddedServer

        self.warn_about_setup()

        def ready(url: str, worker: WorkerRun) -> None:
            self.stdout.write(self.ready_line(url))
            self.stdout.write(_("Press Ctrl-C to stop."))
            self.stdout.flush()

        def stopping() -> None:
            self.stdout.write(_("stopping: letting in-flight runs finish…"))
            self.stdout.flush()

        server = EmbeddedServer(
            _application(), host=host, port=port, on_ready=ready, on_stopping=stopping
        )
        if not server.run():
            raise CommandError(
                _("%(name)s stopped because of an error (see the log above)")
                % {"name": self.server_name}
            )
        self.stdout.write(_("%(name)s stopped") % {"name": self.server_name})

    def warn_about_setup(self) -> None:
        from relaybridge.tasks import dispatch_run

        backend = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
        if not backend.endswith("InMemoryChannelLayer"):
            self.stdout.write(
                _("note: channel layer %(backend)s; other processes may share it")
                % {"backend": backend}
            )
        if not dispatch_run.app.conf.task_always_eager:
            self.stdout.write(_("note: Celery is not eager here; run a Celery worker as well"))


def _application() -> Any:
    """The project's ASGI application, serving static files in DEBUG like runserver."""
    from channels.routing import get_default_application
    from django.apps import apps

    application = get_default_application()
    if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        return ASGIStaticFilesHandler(application)
    return application
