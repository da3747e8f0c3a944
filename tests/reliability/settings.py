"""The deployment's settings with a payload that is slow to build (see :mod:`.adapters`)."""

from __future__ import annotations

from tests.deployment.settings import *  # noqa: F403

RELAYBRIDGE_ADAPTER = "tests.reliability.adapters.SlowPayloadAdapter"
