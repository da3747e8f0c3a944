"""A private ``redis-server`` on a free loopback port, started by the tests themselves.

The suite never writes to a Redis it did not start: whoever runs the tests beside
their own Redis (``REDIS_URL`` or not) keeps every key in it. The session shares one
of these servers (``redis_url``, every user under its own key prefix) and each
multi-process test gets one of its own (``private_redis``), so nothing needs to be
flushed between tests. Should a test want an empty server, :meth:`RedisServer.flush`
is the one way to get it, and it refuses any server but the process this object
launched: the pid Redis reports must be that of our child.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from relaybridge.testing import free_port
from tests.deployment.waiting import wait_until

#: Attempts at a fresh port, should another process take a free one before us.
_PORT_ATTEMPTS = 3


class NotOurServer(RuntimeError):
    """The server on that port is not one this helper launched: it is never flushed."""


def redis_server_installed() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """``redis-server`` without persistence: a restart loses everything, like a crash."""

    def __init__(self, log_path: Path, *, port: int | None = None) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        """Start on a free port (another one if ours was taken meanwhile)."""
        for _ in range(_PORT_ATTEMPTS - 1):
            if self._launch(timeout):
                return
            self.port = free_port()
        if not self._launch(timeout):
            raise RuntimeError(f"redis-server could not listen on port {self.port}")

    def _launch(self, timeout: float) -> bool:
        """Start on ``self.port``; False when the process exited (the port was taken)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--logfile", str(self.log_path)]
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        self.process = process
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)

        def ready() -> bool:
            # A server that was already on the port answers PING too: only ours counts.
            return process.poll() is not None or self._is_ours(client)

        try:
            wait_until(ready, timeout, f"redis-server on port {self.port}", interval=0.02)
        finally:
            client.close()
        return process.poll() is None

    def _is_ours(self, client: redis.Redis) -> bool:
        if self.process is None or self.process.poll() is not None:
            return False
        with contextlib.suppress(redis.RedisError):
            info = client.info("server")
            return bool(info.get("process_id") == self.process.pid)
        return False

    def client(
        self, db: int = 0, *, decode_responses: bool = False, socket_timeout: float = 30.0
    ) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            decode_responses=decode_responses,
            socket_timeout=socket_timeout,
        )

    def flush(self, db: int = 0) -> None:
        """``FLUSHDB`` on database ``db``, if and only if this object launched the server."""
        with self.client(db, socket_timeout=5) as client:
            if not self._is_ours(client):
                raise NotOurServer(
                    f"refusing to flush 127.0.0.1:{self.port}: this test session did not start it"
                )
            client.flushdb()

    def kill(self) -> None:
        """SIGKILL: every connection drops and, without persistence, every key is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, downtime: float = 0.0) -> None:
        """Kill, stay down ``downtime`` seconds, start again on the same port."""
        self.kill()
        time.sleep(downtime)
        if not self._launch(10.0):
            raise RuntimeError(f"redis-server could not listen on port {self.port} again")
        self.restarts += 1

    def stop(self) -> None:
        self.kill()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
