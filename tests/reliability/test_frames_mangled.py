"""Scenario 5: Relay duplicating, delaying and reordering frames, and replying twice.

The emulator's delivery faults (``--duplicate-frames``, ``--delay-frames-ms``,
``--second-reply``) stay within what the protocol allows a client to expect:
frames of different events interleave in any order, one event's frames keep
theirs. An ``accepted``, ``reply`` or ``error`` may come twice; a finished event
may get a second, different reply. Each run must still get exactly one reply
comment, and it must be the first reply's text.
"""

from __future__ import annotations

import time

import pytest

from relaybridge.emulator.agents import summarize
from relaybridge.emulator.router import SECOND_REPLY_TEXT
from tests.deployment.harness import Deployment, Mention

from .scale import SCALE, dice
from .stack import ASK_ATHENA, assert_recovered, rounds, start_stack
from .tally import Tally, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(120 + 6 * SCALE.mentions),
]

ECHO = "@klyve echo this back please"


def test_frames_duplicated_delayed_reordered_and_replies_sent_twice(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    _rng, seed = dice()
    faults = ["--duplicate-frames", "0.3", "--delay-frames-ms", "150", "--second-reply", "0.5"]
    emulator = start_stack(
        deployment, token_delay_ms=20, emulator_args=[*faults, "--fault-seed", str(seed)]
    )
    started = time.monotonic()
    mentions: list[Mention] = []
    for size in rounds(SCALE.mentions, SCALE.rounds):
        bodies = [ECHO if index % 3 == 2 else ASK_ATHENA for index in range(size)]
        mentions += deployment.mention(*bodies)
    tally = settle(deployment, "5 frames doubled/delayed/reordered", mentions, started, 90)
    log = emulator.log_text()
    tally.faults = {
        "duplicated_frames": log.count("twice (injected)"),
        "second_replies": log.count("second reply for finished event"),
        "seed": seed,
    }
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert tally.replied == tally.mentions, tally.failed_runs
    # The faults did happen, and the saved text is always the first reply's.
    assert tally.faults["duplicated_frames"] > 0 and tally.faults["second_replies"] > 0, log
    for mention in mentions:
        [run] = deployment.runs([mention.comment_id])
        [reply] = deployment.agent_comments(mention.task_id)
        assert reply.body != SECOND_REPLY_TEXT, run.brief()
        if run.agent_id == "athena":
            assert run.payload is not None and reply.body == summarize(run.payload)
    assert_recovered(deployment)
