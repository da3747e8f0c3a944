"""The relay worker's database trips per mention (``python -m bench.trips``): one tiny
run on its own database, each trip's queries, and the figure it reports.

No time is asserted; the queries of each trip are, as they are what a trip costs
apart from the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.trips import TRIPS, table
from tests.conftest import require_redis_server, require_service
from tests.deployment.services import POSTGRES_ADMIN_URL, postgres_available

ROOT = Path(__file__).resolve().parents[2]

#: The queries of each trip. The reply: its conditional update, the run read once, the
#: comment, the reply's place on the run, its stored HTML; no second read of the run and
#: no count of votes nobody can have cast yet.
QUERIES = {"intake": 1, "sent": 2, "accepted": 2, "first_token": 2, "reply": 5}


def trips(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.trips", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_a_tiny_run_takes_each_mention_through_its_five_trips() -> None:
    require_service("PostgreSQL", postgres_available(), f"cannot connect to {POSTGRES_ADMIN_URL}")
    require_redis_server()
    done = trips("--mentions=3", "--rounds=2", "--table")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["mentions"] == 3 and len(found["rounds"]) == 2
    assert {name: trip["queries"] for name, trip in found["trips"].items()} == QUERIES
    for one in found["rounds"]:
        walls = [one["trips"][name]["wall_ms"] for name in TRIPS]
        assert all(wall > 0 for wall in walls)
        assert one["wall_ms_per_mention"] == pytest.approx(sum(walls), abs=0.05)
    totals = [one["wall_ms_per_mention"] for one in found["rounds"]]
    assert min(totals) <= found["wall_ms_per_mention"] <= max(totals)
    assert found["wall_ms_per_mention_spread"] == pytest.approx(max(totals) - min(totals), abs=0.01)
    assert "per mention" in done.stdout and table(found) in done.stdout


def test_a_run_of_no_mentions_is_refused() -> None:
    done = trips("--mentions=0")
    assert done.returncode == 2
    assert "--mentions and --rounds must be at least 1" in done.stderr
