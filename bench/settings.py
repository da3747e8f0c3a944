"""Settings of the benchmark stack's processes: the test deployment's, plus load.

Relay's plan limits are lifted (the emulator runs with ``--plan unlimited`` too;
the fairness scenario's relay worker paces itself to ``RELAYBRIDGE_BENCH_PLAN``),
the benchmark agent ``load`` may be mentioned before discovery has run, and the
log level defaults to WARNING so that logging per run does not weigh on the figures.
"""

from __future__ import annotations

import os
from typing import Any, cast

from tests.deployment.settings import *  # noqa: F403
from tests.deployment.settings import CHANNEL_LAYERS, LOGGING, RELAYBRIDGE_AGENTS

# ``--set channel_layer=redis`` measures everything on the list-based layer, pages'
# streams included (RELAYBRIDGE_STREAM_LAYER left at "default"), as a deployment
# configured before the stream layer existed has it. The default, ``project``, keeps
# the example project's layers: the intake on that layer, the streams on Pub/Sub.
if os.environ.get("RELAYBRIDGE_BENCH_CHANNEL_LAYER") == "redis":
    CHANNEL_LAYERS = {"default": CHANNEL_LAYERS["default"]}
    RELAYBRIDGE_STREAM_LAYER = "default"

# As in production: with DEBUG on, Django keeps the last 9,000 queries of every
# database connection in memory (the relay worker has one per database thread),
# which the memory figures would measure instead of relaybridge.
DEBUG = False
# Except in the Daphne the post -> thinking scenario's browser loads pages from: with
# DEBUG on, Daphne serves the page scripts itself (project/asgi.py), as the deployment
# tests' Daphne does; a production site serves them in front of Daphne.
if os.environ.get("RELAYBRIDGE_BENCH_SERVE_STATIC") == "1":
    DEBUG = True
# The emulator listens on plain ws:// on loopback, which E001 rightly refuses for a
# production deployment reaching the real Relay.
SILENCED_SYSTEM_CHECKS = ["relaybridge.E001"]

# The remote scenario's relay worker verifies its TLS emulator against a throwaway
# authority, and the Celery worker runs the connection-per-event task it compares with.
RELAYBRIDGE_RELAY_CA_FILE = os.environ.get("RELAYBRIDGE_BENCH_RELAY_CA_FILE") or None
CELERY_IMPORTS = ["bench.remote_task"]

# The fairness scenario restarts the relay worker on a paced plan.
RELAYBRIDGE_PLAN = os.environ.get("RELAYBRIDGE_BENCH_PLAN", "unlimited")
RELAYBRIDGE_AGENTS = [*RELAYBRIDGE_AGENTS, "load"]
# Stall detection would fail the runs the memory scenario holds open on purpose.
RELAYBRIDGE_STALL_TIMEOUT = 600.0
# Per-run logging would weigh on the figures: WARNING unless RELAYBRIDGE_LOG says otherwise.
loggers = cast(dict[str, dict[str, Any]], LOGGING["loggers"])
loggers["relaybridge"]["level"] = os.environ.get("RELAYBRIDGE_LOG", "WARNING")
# One sign-in opens every measured page: no per-person socket cap.
RELAYBRIDGE_MAX_SOCKETS_PER_USER = None
