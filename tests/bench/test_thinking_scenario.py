"""The post -> thinking scenario at tiny size, as ``make bench-quick`` runs it: Chromium
posts through the task page on the multi-process stack and on the embedded demo.
Figures are not asserted, only that each was measured from the rounds it claims and
that the page's own clock saw the POST's response before the placeholder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployment.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def test_the_thinking_scenario_times_posts_in_a_real_browser(tmp_path: Path) -> None:
    out = tmp_path / "thinking.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "thinking", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    rounds = result["parameters"]["thinking_rounds"]
    assert rounds >= 3
    for key in ("post_to_thinking_p50_ms", "post_to_thinking_p50_ms_demo"):
        assert isinstance(result[key], float) and result[key] > 0, key
        assert isinstance(result["spreads"][key], float), key
        found = result["scenarios"]["post_to_thinking"][key]
        assert len(found["round_p50s"]) == rounds
        assert found["shown_ms"]["count"] == rounds * result["parameters"]["thinking_per_round"]
        # Shown after it was in the page, which was after the POST's response arrived.
        assert found["shown_ms"]["p50"] >= found["in_dom_ms"]["p50"]
        assert found["in_dom_ms"]["p50"] >= found["post_response_ms"]["p50"] > 0
