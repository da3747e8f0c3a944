"""The example project's settings as the suite loads them in its own process.

``project.settings`` leaves ``DEBUG`` off and then requires ``DJANGO_SECRET_KEY``; the
suite gives it a made-up key (unless the environment has one). The processes the
tests start set their own environment (tests/deployment/processes.py, tests/demo).

On PostgreSQL the suite's own process opens connections without the example
project's pool: its tests hold connections as requests
never do (threads that wait for each other at a barrier, each holding one), and the
processes it starts (Daphne, Celery, the relay worker) use the pool as deployed.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "relaybridge-tests-made-up-key-" + "x" * 40)

from project.settings import *  # noqa: F403
from project.settings import DATABASES

DATABASES["default"].get("OPTIONS", {}).pop("pool", None)
