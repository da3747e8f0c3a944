"""The example project pools its PostgreSQL connections (``DATABASE_POOL_SIZE``).

Each case loads ``project.settings`` in a fresh interpreter, as a deployed process
does, and asks PostgreSQL which server process answered each of six requests in a
row: from the pool they are answered on the few connections it keeps; without it,
each request opens its own. Only ``pg_backend_pid()`` is read; nothing is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.deployment.services import POSTGRES_ADMIN_URL, postgres_available

ROOT = Path(__file__).resolve().parents[2]
# Six requests, each ending as Django ends one (request_finished closes the
# connection, or gives it back to the pool).
PROBE = """
import json
import django
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connection
django.setup()
pids = []
for _ in range(6):
    request_started.send(sender=None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pids.append(cursor.fetchone()[0])
    request_finished.send(sender=None)
database = settings.DATABASES["default"]
print(json.dumps({
    "pool": database.get("OPTIONS", {}).get("pool"),
    "health_checks": database["CONN_HEALTH_CHECKS"],
    "pids": pids,
}))
"""


def _probe(**extra: str) -> dict[str, object]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "RELAYBRIDGE_", "RELAY_", "REDIS_", "DATABASE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        DJANGO_SECRET_KEY="pool-test-" + "x" * 50,
        DATABASE_URL=POSTGRES_ADMIN_URL,
        PYTHONPATH=str(ROOT),
        **extra,
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return found


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_service("PostgreSQL", postgres_available(), POSTGRES_ADMIN_URL)


def test_requests_share_a_pooled_connection_by_default() -> None:
    found = _probe()
    assert found["pool"] == {"min_size": 1, "max_size": 8}
    assert found["health_checks"] is True
    pids = found["pids"]
    assert isinstance(pids, list) and len(pids) == 6
    assert len(set(pids)) <= 2, pids  # the one kept at start, and one more at most


def test_the_pool_size_comes_from_the_environment() -> None:
    found = _probe(DATABASE_POOL_SIZE="3")
    assert found["pool"] == {"min_size": 1, "max_size": 3}


def test_a_pool_size_of_zero_opens_a_connection_per_request() -> None:
    found = _probe(DATABASE_POOL_SIZE="0")
    assert found["pool"] is None
    pids = found["pids"]
    assert isinstance(pids, list) and len(pids) == 6 and len(set(pids)) == 6, pids
