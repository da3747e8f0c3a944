"""Settings for the processes the multi-process tests start on the example project.

The example project's settings with the tests' overrides (:mod:`.overrides`).
"""

from __future__ import annotations

from project.settings import *  # noqa: F403
from tests.deployment.overrides import deployment_overrides

globals().update(deployment_overrides())
