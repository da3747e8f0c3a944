"""The remote scenario at tiny size, as ``make bench-quick`` runs it: the whole stack
(PostgreSQL, Redis, Celery, relay worker, Daphne, the emulator over TLS behind the
delay proxy), in a process of its own like the command. Figures are not asserted,
only that each was measured, with its spread, from the rounds it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployment.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

KEYS = ("remote_rtt_ms", "remote_accepted_p50_ms", "remote_accepted_p50_ms_connection_per_event")


def test_the_remote_scenario_measures_both_ways_through_tls_and_the_delay(tmp_path: Path) -> None:
    out = tmp_path / "remote.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "remote", "--out", str(out)]
    cmd += ["--set", "remote_rtt_ms=20", "--keep-logs", str(tmp_path / "logs")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(result[key], float), key
        assert isinstance(result["spreads"][key], float), key
    remote = result["scenarios"]["remote_relay"]
    rounds = result["parameters"]["remote_rounds"]
    assert rounds >= 3
    assert len(remote["accepted_ms_shared_connection"]["rounds"]) == rounds
    per_round = result["parameters"]["remote_per_round"]
    assert remote["shared_connection"]["accepted_ms"]["count"] == rounds * per_round
    assert remote["connection_per_event"]["accepted_ms"]["count"] == rounds * per_round
    # Through the proxy, every exchange pays the configured round trip at least.
    assert result["remote_rtt_ms"] >= 20 * 0.95
    assert remote["shared_connection"]["sent_to_accepted_ms"]["p50"] >= 20 * 0.95
    # A connection per event pays TCP's, TLS's and the upgrade's round trips too.
    assert remote["connection_per_event"]["connect_ms"]["p50"] >= 3 * 20 * 0.95
    assert remote["dispatch_run_ms"]["count"] >= rounds * per_round
    assert "remote: mention -> accepted p50" in done.stdout
