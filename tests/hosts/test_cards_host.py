"""The cards host's Django suite, run under its own settings in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.deployment.processes import ROOT

from .conftest import CARDS_SETTINGS


@pytest.mark.timeout(600)
def test_the_cards_host_suite_passes() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--ds", CARDS_SETTINGS, "tests/hosts/cards", "-q"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert done.returncode == 0, f"{summary[0]}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in summary[0] and "skipped" not in summary[0], summary[0]
