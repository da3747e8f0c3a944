"""The example project's settings as the suite loads them in its own process.

``project.settings`` leaves ``DEBUG`` off and then requires ``DJANGO_SECRET_KEY``; the
suite gives it a made-up key (unless the environment has one). The processes the
tests start set their own environment (tests/deployment/processes.py, tests/demo).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "relaybridge-tests-made-up-key-" + "x" * 40)

from project.settings import *  # noqa: F403
