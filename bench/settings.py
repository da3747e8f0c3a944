"""Settings of the benchmark stack's processes: the test deployment's, plus load.

Relay's plan limits are lifted (the emulator runs with ``--plan unlimited`` too),
the benchmark agent ``load`` may be mentioned before discovery has run, and the
log level defaults to WARNING so that logging per run does not weigh on the figures.
"""

from __future__ import annotations

import os

from tests.deployment.settings import *  # noqa: F403
from tests.deployment.settings import LOGGING, REDIS_URL, RELAYBRIDGE_AGENTS

# channels_redis counts its capacity (default 100) per *process* inbox: every page a
# Daphne process serves shares one. A burst of deltas for a hundred open pages
# overflows 100 in a few milliseconds of lag, and group_send then drops messages
# silently. A deployment that streams to many pages per process needs more room.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 5000},
    }
}
# ``--set channel_layer=pubsub`` measures channels_redis's Pub/Sub layer instead: one
# PUBLISH per group message and no per-message round trips on the receiving side.
if os.environ.get("RELAYBRIDGE_BENCH_CHANNEL_LAYER") == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }

# As in production: with DEBUG on, Django keeps the last 9,000 queries of every
# database connection in memory (the relay worker has one per database thread),
# which the memory figures would measure instead of relaybridge.
DEBUG = False
# The emulator listens on plain ws:// on loopback, which E001 rightly refuses for a
# production deployment reaching the real Relay.
SILENCED_SYSTEM_CHECKS = ["relaybridge.E001"]

RELAYBRIDGE_PLAN = "unlimited"
RELAYBRIDGE_AGENTS = [*RELAYBRIDGE_AGENTS, "load"]
# Stall detection would fail the runs the memory scenario holds open on purpose.
RELAYBRIDGE_STALL_TIMEOUT = 600.0
# Per-run logging would weigh on the figures: WARNING unless RELAYBRIDGE_LOG says otherwise.
LOGGING["loggers"]["relaybridge"]["level"] = os.environ.get("RELAYBRIDGE_LOG", "WARNING")
