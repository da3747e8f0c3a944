"""Stop pressed mid-stream, then the same agent asked again on the same task.

Relay has no cancel message, so Stop cannot stop the agent: ``slow`` finishes its
answer anyway and ``stall`` never finishes at all. What Stop must do: end the run at
once (through the real page endpoint, signed in, with CSRF), keep the text so far,
never save the agent's later reply, and not keep the thread blocked for the next
mention of the same agent: that one waits for the stopped answer (so they cannot
collide on Relay's side), then runs and ends like any other.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.deployment.harness import Deployment, Mention, RunRow, mentions_from
from tests.deployment.processes import LoggedEmulatorProcess
from tests.deployment.waiting import wait_until

from .pages import PageSession
from .scale import SCALE
from .stack import SLOW_AGENT_DELAY, rounds, start_stack
from .tally import Tally, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(150 + 8 * SCALE.mentions),
]

ASK = {"slow": "@slow take your time", "stall": "@stall tell me everything"}
AGAIN = {"slow": "@slow and once more, please", "stall": "@stall and now?"}
#: Stopped runs keep their places in flight a while (Starter allows ten): a round's
#: stopped runs and their follow-ups stay within that.
ROUND_CAP = 5


def comment_again(deployment: Deployment, specs: list[dict[str, object]]) -> list[Mention]:
    output = deployment.run_module("tests.reliability.actions", "comment", json.dumps(specs))
    return mentions_from(output)


def relay_timeouts(emulator: LoggedEmulatorProcess) -> int:
    return emulator.log_text().count("failed: AGENT_TIMEOUT")


def all_streaming(rows: list[RunRow]) -> bool:
    return all(row.status == "streaming" for row in rows)


def test_stop_mid_stream_ends_the_run_and_frees_the_thread(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    # Relay has no cancel: it ends a stopped event that the agent never finishes only
    # by its own timeout, here well after the watchdog (5 s). Until then the event
    # takes one of the ten places in flight that Relay allows the app.
    emulator = start_stack(deployment, emulator_args=[*SLOW_AGENT_DELAY, "--event-timeout", "12"])
    assert deployment.manage("seed_demo").returncode == 0
    page = PageSession(deployment.start_daphne())
    page.sign_in("demo", "demo")
    started = time.monotonic()
    stopped: list[Mention] = []
    follow_ups: list[Mention] = []
    first_count = SCALE.mentions // 2
    stall_events = 0
    for size in rounds(first_count, max(SCALE.rounds, -(-first_count // ROUND_CAP))):

        def stalls_timed_out(due: int = stall_events) -> bool:
            return relay_timeouts(emulator) >= due

        wait_until(
            stalls_timed_out,
            30,
            "Relay to time out the events `stall` never finished",
        )
        agents = ["stall" if index % 2 else "slow" for index in range(size)]
        stall_events += 2 * agents.count("stall")  # the stopped one and its follow-up
        batch = deployment.mention(*(ASK[agent] for agent in agents))
        rows = deployment.wait_for_runs(batch, all_streaming, 30, "every run to stream")
        for row in rows:
            status, answer = page.stop(str(row.run_id))
            assert (status, answer.get("status")) == (200, "stopped"), answer
        stopped += batch
        again = [
            {"task_id": m.task_id, "body": AGAIN[a]} for m, a in zip(batch, agents, strict=True)
        ]
        added = comment_again(deployment, again)
        follow_ups += added
        deployment.wait_until_ended(added, 60)
    tally = settle(
        deployment, "8 Stop mid-stream, asked again", [*stopped, *follow_ups], started, 60
    )
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert tally.stopped == len(stopped), tally
    for row in deployment.runs([m.comment_id for m in stopped]):
        assert row.status == "stopped" and row.partial_text, row.brief()
        # Stop again: the run has ended, and says so.
        assert page.stop(str(row.run_id))[0] == 409
    for row in deployment.runs([m.comment_id for m in follow_ups]):
        if row.agent_id == "slow":
            # Sent once the stopped answer had finished; its reply is the only comment.
            assert row.status == "replied", row.brief()
        else:
            assert row.error_code == "RELAYBRIDGE_STALLED", row.brief()
