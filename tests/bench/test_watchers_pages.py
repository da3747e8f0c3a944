"""The watchers and big-threads scenarios: their arithmetic, the page without
relaybridge's tags, and one tiny run of both on the real stack producing every key.

No figure is asserted (timing on a shared machine is nobody's business in a test):
the run proves the harness opens pages, times pushes and reads the task page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.pages import TEMPLATE, plain_template
from bench.watchers import fanout_round, raise_fd_limit, spread
from tests.conftest import require_redis_server, require_service
from tests.deployment.services import POSTGRES_ADMIN_URL, postgres_available

ROOT = Path(__file__).resolve().parents[2]
KEYS = [
    "watchers_rss_kb_per_socket",
    "fanout_500_p99_ms",
    "fanout_500_p99_ms_two_daphne",
    "stop_to_other_daphne_ms",
    "page_queries_5",
    "page_queries_200",
    "page_render_ratio_200",
]


def test_the_page_without_relaybridge_keeps_everything_but_its_tags() -> None:
    source = (ROOT / "templates" / TEMPLATE).read_text()
    plain = plain_template(source)
    assert "relaybridge_" not in plain and "load relaybridge" not in plain
    # The host's own markup stays, replies drawn as people's comments.
    assert "{% for comment in comments %}" in plain
    assert "comment.body|linebreaks" in plain
    assert "{% if False %}{% else %}" in plain


def test_a_task_page_of_another_shape_is_refused_rather_than_measured_wrong() -> None:
    with pytest.raises(RuntimeError, match=r"update bench\.pages\.plain_template"):
        plain_template("{% load relaybridge %}{% relaybridge_stream task %}")


def test_a_delta_counts_from_its_push_to_the_last_page_that_got_it() -> None:
    pushed = {("r", 1): 1_000_000_000, ("r", 2): 2_000_000_000}
    pages = [
        {"label": 0, "deltas": {"r": [[1, 1_002_000_000], [2, 2_001_000_000]]}, "stops": {}},
        {"label": 0, "deltas": {"r": [[1, 1_005_000_000]]}, "stops": {}},
    ]
    found = fanout_round(pushed, pages)
    assert found["push_to_last_page_ms"]["max"] == 5.0
    assert found["push_to_each_page_ms"]["count"] == 3
    # The second page got delta 2 in a status's text instead.
    assert found["deliveries_missing"] == 1
    assert found["p99_ms"] == 5.0
    assert found["slowest_deltas"] == [[1, 5.0], [2, 1.0]]
    assert spread([3.0, 1.0, 2.0]) == [1.0, 3.0]
    assert spread([]) == []


def test_the_open_files_limit_is_raised_as_far_as_the_hard_limit_allows() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        raised = raise_fd_limit()
        assert raised >= soft
        if hard != resource.RLIM_INFINITY:
            assert raised == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("key", "label"),
    [("fanout_500_p99_ms", "500 pages"), ("worker_db_ms_per_mention", "DB thread per mention")],
)
def test_the_table_prints_a_median_with_its_spread(key: str, label: str) -> None:
    figures = {name: float("nan") for name in report.REQUIRED_KEYS}
    figures[key] = 12.0
    result = report.assemble(
        figures,
        mode="quick",
        parameters={},
        scenarios={},
        spreads={key: 3.75},
    )
    [line] = [row for row in report.table(result).splitlines() if label in row]
    assert "12.0" in line and " 3.8 " in line
    assert set(KEYS) <= set(report.REQUIRED_KEYS)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_both_scenarios_run_at_tiny_size_and_produce_their_keys(tmp_path: Path) -> None:
    require_service("PostgreSQL", postgres_available(), f"cannot connect to {POSTGRES_ADMIN_URL}")
    require_redis_server()
    out = tmp_path / "results.json"
    tiny = [
        "watchers_sockets=4",
        "watchers_rss_rounds=2",
        "fanout_watchers=4",
        "fanout_tokens=3",
        "fanout_rounds=2",
        "pages_comments=5,9",
        "pages_rounds=2",
        "pages_requests=1",
    ]
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "watchers,pages", "--out", str(out)]
    for assignment in tiny:
        cmd += ["--set", assignment]
    cmd += ["--keep-logs", str(tmp_path / "logs")]
    done = subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(written[key], float), key
    assert written["page_queries_5"] == written["page_queries_200"]
    spreads = written["spreads"]
    for key in KEYS:
        if not key.startswith("page_queries"):
            assert spreads[key] >= 0, key
    fanout = written["scenarios"]["fanout_2_daphne"]
    assert fanout["pages_per_daphne"] == [2, 2]
    for stop in fanout["stop_rounds"]:
        assert stop["stop_status"] == 200
        assert stop["pages_behind"] == 0
        assert stop["to_other_daphne_ms"]["count"] == 2
    for found in (written["scenarios"]["fanout_1_daphne"], fanout):
        for rounded in found["rounds"]:
            assert rounded["deltas_pushed"] >= 1 and rounded["pages_behind"] == 0
    assert "task page queries, 200 comments" in done.stdout
