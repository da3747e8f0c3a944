"""``python -m bench.compare``: two results files side by side, and the exit status
that says whether every figure of one run is within the tolerance of the other's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import compare, report


def _results(**overrides: float | None) -> dict[str, float | None]:
    figures: dict[str, float | None] = {key: 10.0 for key in report.REQUIRED_KEYS}
    figures.update(overrides)
    return figures


def test_how_far_apart_is_the_same_whichever_run_comes_first() -> None:
    assert compare.apart(10.0, 13.0) == pytest.approx(0.3)
    assert compare.apart(13.0, 10.0) == pytest.approx(0.3)
    assert compare.apart(6.0, 6.0) == 0.0
    assert compare.apart(0.0, 0.0) == 0.0
    # Nothing agrees with zero but zero, nor a figure with one of the other sign.
    assert math.isinf(compare.apart(0.0, 1.0))
    assert math.isinf(compare.apart(-1.0, 1.0))


def test_each_figure_is_compared_and_a_missing_one_does_not_agree() -> None:
    rows = compare.compare(
        _results(fanout_500_p99_ms=100.0, page_render_ratio_200=None),
        _results(fanout_500_p99_ms=131.0),
    )
    by_key = {row["key"]: row for row in rows}
    assert len(rows) == len(report.REQUIRED_KEYS)
    assert by_key["fanout_500_p99_ms"]["agree"] is False
    assert by_key["fanout_500_p99_ms"]["apart"] == pytest.approx(0.31)
    assert by_key["page_render_ratio_200"]["agree"] is False
    assert by_key["page_render_ratio_200"]["apart"] is None
    assert [row["key"] for row in rows if not row["agree"]] == [
        "fanout_500_p99_ms",
        "page_render_ratio_200",
    ]


def test_the_command_exits_1_on_a_disagreement_and_0_when_all_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(_results()))
    second.write_text(json.dumps(_results(remote_rtt_ms=12.5)))
    assert compare.main([str(first), str(second)]) == 0
    shown = capsys.readouterr().out
    assert f"{len(report.REQUIRED_KEYS)} of {len(report.REQUIRED_KEYS)} figures within 30%" in shown

    assert compare.main([str(first), str(second), "--tolerance", "0.2"]) == 1
    shown = capsys.readouterr().out
    assert "remote Relay: RTT through the proxy" in shown and "<- over 20%" in shown


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SystemExit, match=r"cannot read .*broken\.json"):
        compare.main([str(broken), str(broken)])
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(SystemExit, match="not a bench results file"):
        compare.main([str(listed), str(listed)])
