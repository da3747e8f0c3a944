"""How big a run of the fault scenarios is: the short form (every ``make test``) or the full one.

``make reliability`` sets ``RELAYBRIDGE_RELIABILITY=full``: at least 50 mentions per
scenario and the 500-mention burst against the Starter limits. Without it the same
scenarios run with fewer mentions, so CI exercises every fault on every change.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

FULL = os.environ.get("RELAYBRIDGE_RELIABILITY") == "full"


@dataclass(frozen=True)
class Scale:
    #: Mentions per fault scenario.
    mentions: int
    #: Mentions of the pacing burst (scenario 7).
    burst: int
    #: How many times a process is killed (or a fault repeated) per scenario.
    rounds: int


SHORT = Scale(mentions=12, burst=24, rounds=2)
LONG = Scale(mentions=50, burst=500, rounds=5)
SCALE = LONG if FULL else SHORT


def dice() -> tuple[random.Random, int]:
    """A random source and its seed; ``RELAYBRIDGE_RELIABILITY_SEED`` replays a run."""
    seed = int(os.environ.get("RELAYBRIDGE_RELIABILITY_SEED") or time.time_ns() % 1_000_000)
    return random.Random(seed), seed
