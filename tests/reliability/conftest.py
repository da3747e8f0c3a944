"""The fault scenarios' shared pieces: the tally sheet and the report.

Every scenario records a :class:`~.tally.Tally`. At the end of the session the
table is printed; the full form (``make reliability``) also writes it to
``reports/reliability.json`` with the ``lost`` and ``duplicated`` totals at the top.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.deployment.processes import ROOT

from .scale import FULL, SCALE
from .tally import Tally, table

REPORT_PATH = ROOT / "reports" / "reliability.json"

_sheet: list[Tally] = []


@pytest.fixture
def tally_sheet() -> list[Tally]:
    """Append a scenario's tally here: it goes into the table and the report."""
    return _sheet


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _sheet:
        return
    form = "full" if FULL else "short"
    terminalreporter.section(f"reliability ({form} form)")
    _sheet.sort(key=lambda tally: tally.scenario)
    terminalreporter.write_line(table(_sheet))
    if terminalreporter.config.get_verbosity() > 0:
        for tally in _sheet:
            terminalreporter.write_line(
                f"{tally.scenario}: {tally.faults} {tally.failure_codes}"
                f" replied after attempts {tally.replied_after_attempts}"
            )
            for line in tally.failed_runs:
                terminalreporter.write_line(f"{tally.scenario}: {line}")
    if FULL:
        write_report(_sheet, REPORT_PATH)
        terminalreporter.write_line(f"written to {REPORT_PATH.relative_to(ROOT)}")


def write_report(tallies: list[Tally], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "form": "full" if FULL else "short",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mentions": sum(t.mentions for t in tallies),
        "lost": sum(t.lost for t in tallies),
        "duplicated": sum(t.duplicated for t in tallies),
        "scale": {"mentions": SCALE.mentions, "burst": SCALE.burst, "rounds": SCALE.rounds},
        "scenarios": [t.as_dict() for t in tallies],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
