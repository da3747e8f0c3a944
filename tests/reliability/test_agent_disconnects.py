"""Scenario 6: the agent loses its connection mid-answer — and comes back, or never does.

An external agent (a real process on Relay's agent endpoint, :mod:`.agent`) drops
its TCP connection every few tokens and reconnects: Relay takes the rest of each
answer on the new connection, so every mention must get its whole reply. Killed
for good mid-answer, it leaves accepted events that nobody will finish: the relay
worker's watchdog must fail each of them visibly, keeping what had streamed.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest

from tests.deployment.harness import Deployment, Mention, RunRow
from tests.deployment.processes import LoggedEmulatorProcess, ManagedProcess
from tests.deployment.waiting import wait_until

from .agent import ANSWER
from .scale import SCALE, dice
from .stack import assert_recovered, rounds, start_stack
from .tally import Tally, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(150 + 6 * SCALE.mentions),
]

AGENT_TOKEN = "rla_scribe_reliability"
ASK_SCRIBE = "@scribe what do you make of this?"
#: Relay's Starter plan lets ten events be in flight: a round stays within it, so
#: every event of a round is with the agent before the agent goes away.
ROUND_CAP = 10


def start_agent(
    deployment: Deployment, emulator: LoggedEmulatorProcess, *, drop_every: float, delay_ms: int
) -> ManagedProcess:
    cmd = [sys.executable, "-m", "tests.reliability.agent", "--url", emulator.agent_url]
    cmd += ["--token", AGENT_TOKEN, "--drop-every-s", str(drop_every)]
    agent = deployment.start_process("agent", [*cmd, "--token-delay-ms", str(delay_ms)])
    wait_until(lambda: agent.log_lines("agent connected"), 20, "the agent to connect")
    return agent


def start_with_scribe(deployment: Deployment, *extra_args: str) -> LoggedEmulatorProcess:
    args = ["--agent-token", f"{AGENT_TOKEN}=scribe", *extra_args]
    emulator = start_stack(deployment, emulator_args=args)
    # Mentions of @scribe count once discovery has listed it.
    wait_until(
        lambda: (s := deployment.worker_status()) is not None and "scribe" in s.agents,
        20,
        "discovery to list scribe",
    )
    return emulator


def test_agent_reconnecting_mid_answer_finishes_every_answer(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    _rng, seed = dice()
    emulator = start_with_scribe(deployment)
    agent = start_agent(deployment, emulator, drop_every=0.5, delay_ms=40)
    started = time.monotonic()
    mentions: list[Mention] = []
    for size in rounds(SCALE.mentions, SCALE.rounds):
        mentions += deployment.mention(*[ASK_SCRIBE] * size)
        time.sleep(0.5)
    tally = settle(deployment, "6a agent reconnects mid-answer", mentions, started, 120)
    drops = len(agent.log_lines("agent dropped its connection"))
    tally.faults = {"agent_drops": drops, "seed": seed}
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert drops >= SCALE.rounds, agent.log_text()
    # Every answer the agent began is finished, across its reconnects. An event Relay
    # handed to a connection in the instant it died never reached the agent: such a
    # run can only end by the watchdog, visibly.
    received = {line.split()[-1] for line in agent.log_lines("agent got ")}
    for mention in mentions:
        [run] = deployment.runs([mention.comment_id])
        if run.event_id in received:
            assert run.status == "replied", run.brief()
            assert [c.body for c in deployment.agent_comments(mention.task_id)] == [ANSWER]
        else:
            assert run.error_code == "RELAYBRIDGE_STALLED", run.brief()
    assert tally.replied > tally.mentions // 2, tally.failed_runs


def relay_timeouts(emulator: LoggedEmulatorProcess) -> int:
    return emulator.log_text().count("failed: AGENT_TIMEOUT")


def all_with_the_agent(rows: list[RunRow]) -> bool:
    return all(row.status in {"accepted", "streaming"} for row in rows) and any(
        row.status == "streaming" for row in rows
    )


def test_agent_gone_for_good_mid_answer_fails_visibly_by_watchdog(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    _rng, seed = dice()
    # Relay times dead events out too, well after the watchdog (5 s) has acted: had
    # Relay's AGENT_TIMEOUT come first, the run would be retried against an agent that
    # is offline for good and fail only after the offline backoff (a minute).
    emulator = start_with_scribe(deployment, "--event-timeout", "10")
    started = time.monotonic()
    mentions: list[Mention] = []
    sizes = rounds(SCALE.mentions, max(SCALE.rounds, -(-SCALE.mentions // ROUND_CAP)))
    for size in sizes:
        agent = start_agent(deployment, emulator, drop_every=0, delay_ms=300)
        # Relay's own timeout ends the dead events on its side too; until then they
        # count against the app's ten events in flight.
        ended = len(mentions)

        def dead_events_timed_out(ended: int = ended) -> bool:
            return relay_timeouts(emulator) >= ended

        wait_until(
            dead_events_timed_out,
            30,
            "Relay to time out the dead events",
        )
        batch = deployment.mention(*[ASK_SCRIBE] * size)
        mentions += batch
        deployment.wait_for_runs(batch, all_with_the_agent, 30, "every run with the agent")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        deployment.wait_until_ended(batch, 30)
    tally = settle(deployment, "6b agent gone, watchdog", mentions, started, 30)
    tally.faults = {"agents_killed": len(sizes), "seed": seed}
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert tally.failure_codes == {"RELAYBRIDGE_STALLED": tally.mentions}, tally.failed_runs
    # What had streamed is kept, and it is the start of the agent's answer.
    for row in deployment.runs([m.comment_id for m in mentions]):
        assert ANSWER.startswith(row.partial_text), row.brief()
    # Until Relay times the dead events out they fill its in-flight places: new work
    # would be refused with RATE_LIMITED (and retried a minute later).
    ended = len(mentions)
    wait_until(lambda: relay_timeouts(emulator) >= ended, 30, "Relay to time out the rest")
    assert_recovered(deployment)
