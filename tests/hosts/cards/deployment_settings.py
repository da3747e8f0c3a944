"""The cards host's settings for the multi-process tests: with the tests' overrides."""

from __future__ import annotations

from tests.deployment.overrides import deployment_overrides
from tests.hosts.cards.settings import *  # noqa: F403

globals().update(deployment_overrides())
