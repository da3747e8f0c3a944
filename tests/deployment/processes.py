"""Child processes of a test deployment: a shared environment, logs in files, sure kills."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from relaybridge.testing import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULE = "tests.deployment.settings"
#: The secret key every process of a deployment signs with (sessions made by one
#: Daphne are read by another); made up, as the whole deployment is.
DEPLOYMENT_SECRET_KEY = "relaybridge-deployment-tests-made-up-key-" + "x" * 30
#: The emulator names the test app this in its log ("app test connected").
EMULATOR_APP_ID = "test"


def base_env(
    *,
    database_url: str,
    redis_url: str | None,
    settings_module: str = SETTINGS_MODULE,
    **extra: str,
) -> dict[str, str]:
    """The environment every process of a deployment shares (on the host of ``settings_module``)."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing from the surrounding shell may point a process at another service.
        if key not in {"DATABASE_URL", "REDIS_URL", "RELAY_URL", "RELAY_APP_TOKEN"}
        and not key.startswith("RELAYBRIDGE_")
    }
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        # DEBUG on: Daphne serves the static files (nothing else would), and the
        # emulator's ws:// URL passes relaybridge.E001. ``extra`` (or start_daphne's
        # env) may turn it off for one process.
        DJANGO_DEBUG="1",
        DJANGO_SECRET_KEY=DEPLOYMENT_SECRET_KEY,
        DATABASE_URL=database_url,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


class ManagedProcess:
    """A child process in its own session, with stdout and stderr in one log file."""

    def __init__(
        self, name: str, cmd: Sequence[str], *, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 -- closed in kill()
        self.started_at = time.monotonic()
        # A new session: the process and anything it forks form one group that
        # teardown can kill by this process's id, whatever the test did to it.
        self.popen = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid} returncode={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if needle in line]

    def send_signal(self, signum: int) -> None:
        if self.alive:
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def request_stop(self) -> None:
        """SIGTERM: the process winds down and exits (and writes its coverage data,
        which a SIGKILLed process loses)."""
        self.send_signal(signal.SIGTERM)

    def stop(self, deadline: float) -> None:
        """Wait for the process to exit until ``deadline`` (monotonic), then :meth:`kill`."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group (if the process still runs) and reap it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        finally:
            self._log.close()


class LoggedEmulatorProcess(EmulatorProcess):
    """The emulator process, with its log kept in a file the test can read.

    :class:`EmulatorProcess` lets the emulator's log go to the test's own stderr. A
    shell that ``exec``s the emulator with stderr appended to a file keeps the
    process id (so kill and restart still work) and keeps one log across restarts.
    """

    def __init__(self, *, log_path: Path, **kwargs: Any) -> None:
        kwargs.setdefault("log_level", "INFO")
        super().__init__(**kwargs)
        self.log_path = log_path

    def command(self) -> list[str]:
        return ["sh", "-c", 'exec "$@" 2>>"$0"', str(self.log_path), *super().command()]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def app_connections(self, app_id: str = EMULATOR_APP_ID) -> int:
        """How many times an app connection was opened (and authenticated) so far."""
        return self.log_text().count(f"app {app_id} connected")

    def open_app_connections(self, app_id: str = EMULATOR_APP_ID) -> int:
        text = self.log_text()
        return text.count(f"app {app_id} connected") - text.count(f"app {app_id} disconnected")
