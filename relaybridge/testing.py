"""Helpers for testing a project that uses relaybridge, against a local Relay.

Importable without Django settings. Two ways to get a Relay:

* in-process, sharing the test's event loop, with the full control API::

      async with running_emulator() as relay:
          ...  # connect to relay.url with relay.app_token
          relay.set_agent_offline("athena")

  A pytest fixture is a two-liner::

      @pytest.fixture
      async def relay():
          async with running_emulator() as emulator:
              yield emulator

* as a separate process, which can be killed and restarted on the same port to
  test reconnection::

      with EmulatorProcess() as relay:
          ...  # relay.url
          relay.kill()
          relay.restart()
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import IO, Any

from relaybridge.emulator import EmulatorConfig, RelayEmulator
from relaybridge.emulator.auth import AGENT_PATH, APP_PATH, base_url_for

#: The app token (and app id) the helpers configure unless told otherwise.
TEST_APP_TOKEN = "rlk_test_emulatortoken"
TEST_APP_ID = "test"
#: Token delay used by the helpers: fast enough for tests, still a real stream.
TEST_TOKEN_DELAY_MS = 1.0

__all__ = [
    "TEST_APP_ID",
    "TEST_APP_TOKEN",
    "EmulatorProcess",
    "emulator_config",
    "free_port",
    "running_emulator",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def emulator_config(**overrides: Any) -> EmulatorConfig:
    """An :class:`EmulatorConfig` for tests: a free port, one test app, fast tokens."""
    base = EmulatorConfig(
        host="127.0.0.1",
        port=0,
        app_tokens={TEST_APP_TOKEN: TEST_APP_ID},
        token_delay_ms=TEST_TOKEN_DELAY_MS,
    )
    return dataclasses.replace(base, **overrides)


@asynccontextmanager
async def running_emulator(
    config: EmulatorConfig | None = None, **overrides: Any
) -> AsyncIterator[RelayEmulator]:
    """Run a Relay emulator in this event loop for the duration of the block.

    The yielded :class:`RelayEmulator` has ``url`` (the app endpoint),
    ``agent_url``, ``app_token`` and the control API. ``overrides`` are
    :class:`EmulatorConfig` fields applied on top of :func:`emulator_config`.
    """
    relay = RelayEmulator(config if config is not None else emulator_config(**overrides))
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


class EmulatorProcess:
    """``python -m relaybridge.emulator`` in a child process, on a port that survives restarts."""

    def __init__(
        self,
        *,
        app_tokens: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        token_delay_ms: float = TEST_TOKEN_DELAY_MS,
        log_level: str = "WARNING",
        startup_timeout: float = 15.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.app_tokens = dict(app_tokens or {TEST_APP_TOKEN: TEST_APP_ID})
        self.args = list(args)
        self.host = host
        self._port = port
        self.token_delay_ms = token_delay_ms
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[str] | None = None
        #: Serving ``wss://`` (``--tls-cert`` among the arguments).
        self.tls = "--tls-cert" in self.args

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "relaybridge.emulator", "--host", self.host]
        cmd += ["--port", str(self._port), "--token-delay-ms", str(self.token_delay_ms)]
        cmd += ["--log-level", self.log_level]
        for token, app_id in self.app_tokens.items():
            cmd += ["--app-token", f"{token}={app_id}"]
        return cmd + self.args

    def start(self) -> EmulatorProcess:
        """Start the process and wait for its ``listening on`` line."""
        if self.running:
            raise RuntimeError("the emulator process is already running")
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        self._proc = proc
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None  # stdout=PIPE guarantees it
        # A thread keeps draining stdout so the child can never block on a full pipe.
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        try:
            first = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError("the emulator did not report its address in time") from None
        scheme = "wss://" if self.tls else "ws://"
        if not first.startswith(f"listening on {scheme}"):
            self.kill()
            raise RuntimeError(f"unexpected first line from the emulator: {first!r}")
        self._port = int(first.rsplit(":", 1)[1])
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last process (``None`` while it runs)."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        return base_url_for(self.host, self.port, tls=self.tls)

    @property
    def url(self) -> str:
        return self.base_url + APP_PATH

    @property
    def agent_url(self) -> str:
        return self.base_url + AGENT_PATH

    @property
    def app_token(self) -> str:
        return next(iter(self.app_tokens))

    def kill(self) -> None:
        """SIGKILL: the process dies without closing its connections (a crash)."""
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: the emulator closes its connections cleanly and exits."""
        self._signal(signal.SIGTERM)

    def restart(self) -> EmulatorProcess:
        """Stop if running (SIGTERM) and start again on the same port."""
        if self.running:
            self.terminate()
        return self.start()

    def _signal(self, signum: int) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signum)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.terminate()


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    # The pipe is closed at its end (the process exited): left open it leaks a file.
    with stream:
        for line in stream:
            lines.put(line.strip())
