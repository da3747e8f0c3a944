"""Each host project's Django tests run under that host's settings, in their own session.

A Django process has one comment model (``AgentRun`` points at it), so the cards
host's tests cannot share a session with the example project's. Under the
example's settings this directory collects only ``test_cards_host.py``, which runs
the cards suite in a subprocess; under the cards settings
(``pytest --ds tests.hosts.cards.settings tests/hosts/cards``) only that suite.
"""

from __future__ import annotations

import os
from pathlib import Path

CARDS_SETTINGS = "tests.hosts.cards.settings"

_under_cards = os.environ.get("DJANGO_SETTINGS_MODULE") == CARDS_SETTINGS


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    here = Path(__file__).parent
    if collection_path == here / "cards":
        return not _under_cards or None
    if collection_path == here / "test_cards_host.py":
        return _under_cards or None
    return None
