"""``manage.py relay_worker``: hold the deployment's one Relay connection.

With ``RELAY_APP_TOKEN`` set it connects to ``RELAY_URL`` (Relay itself by
default). Without a token it starts the local Relay emulator, with its scripted
agents, inside the same process on a loopback port: the embedded default.

SIGTERM or Ctrl-C drains (in-flight runs finish, up to
``RELAYBRIDGE_SHUTDOWN_TIMEOUT``); a second signal exits at once. Should the
connection loop die, the worker drains and the command exits with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relaybridge.checks import separate_worker_layer_problem
from relaybridge.worker.bridge import SideTaskDied
from relaybridge.worker.launch import WorkerRun

logger = logging.getLogger("relaybridge.worker")

#: How long a thread may hold the interpreter while another waits for it.
WORKER_SWITCH_INTERVAL_S = 0.0005


class Command(BaseCommand):
    help = "Run the relay worker: the one Relay connection of this deployment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--lock-ttl",
            type=float,
            default=10.0,
            help="Seconds a standby waits before taking over from a dead worker (default 10).",
        )
        parser.add_argument(
            "--emulator",
            action="store_true",
            help="Use an in-process Relay emulator even when RELAY_APP_TOKEN is set.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        problem = separate_worker_layer_problem()
        if problem is not None:  # else runs would wait for the sweep, silently
            raise CommandError(problem)
        if not logging.getLogger("relaybridge").hasHandlers():
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
        # The event loop gives up the interpreter on every socket call, and the
        # database thread, busy saving replies, then keeps it for up to the switch
        # interval (5 ms by default) before the loop gets it back: a token pushed
        # while a hundred answers end paid that several times over.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(WORKER_SWITCH_INTERVAL_S)
        # Everything loaded so far (Django, the apps, their modules) lives as long as
        # the process: out of the collector's sight, a full collection no longer walks
        # it. Without this, one stopped the event loop, and every stream, for 60-170 ms.
        gc.collect()
        gc.freeze()
        try:
            asyncio.run(self._main(options["lock_ttl"], options["emulator"]))
        except SideTaskDied as exc:
            # Exit non-zero: the process manager (or the standby) starts afresh.
            raise CommandError(f"the relay worker stopped: {exc}") from exc
        finally:
            # As found, for a caller that goes on (call_command).
            gc.unfreeze()
            sys.setswitchinterval(switch_interval)

    async def _main(self, lock_ttl: float, force_emulator: bool) -> None:
        run = WorkerRun(lock_ttl=lock_ttl, force_emulator=force_emulator)
        main = asyncio.current_task()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                run.request_stop()
            elif main is not None:
                logger.warning("second signal: exiting now")
                main.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        with contextlib.suppress(asyncio.CancelledError):
            await run.run()
