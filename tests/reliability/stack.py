"""Starting a scenario's deployment and driving mentions through it in rounds."""

from __future__ import annotations

from collections.abc import Sequence

from tests.deployment.harness import Deployment, Mention, RunRow
from tests.deployment.processes import LoggedEmulatorProcess, ManagedProcess
from tests.deployment.waiting import wait_until

ASK_ATHENA = "@athena summarize this task"
ASK_SLOW = "@slow take your time"
#: ``slow`` answers nine words this far apart: about seven seconds, longer than a
#: relay worker takeover, so its answer goes on arriving on the next connection.
SLOW_AGENT_DELAY = ["--agent-delay-ms", "slow=800"]
#: Short enough for a standby to take over within a few seconds of a kill.
LOCK_TTL = 3.0
#: Watchdog and sweep short enough for a scenario of a minute; the relay worker's
#: defaults (120 s, 30 s) would make every fault a two-minute wait.
FAST_SETTINGS = {
    "RELAYBRIDGE_STALL_TIMEOUT": "5",
    "RELAYBRIDGE_SWEEP_INTERVAL": "1",
    "RELAYBRIDGE_REDISPATCH_AFTER": "5",
    # An answer lost with a connection is asked again this soon after the next one.
    "RELAYBRIDGE_RESEND_GRACE": "3",
    "RELAYBRIDGE_LOG": "INFO",
}


def start_stack(
    deployment: Deployment,
    *,
    token_delay_ms: float = 40,
    emulator_args: Sequence[str] = (),
    workers: int = 1,
) -> LoggedEmulatorProcess:
    """Emulator, one Celery worker and ``workers`` relay workers, connected to Relay."""
    for name, value in FAST_SETTINGS.items():
        deployment.settings.setdefault(name, value)
    emulator = deployment.start_emulator(token_delay_ms=token_delay_ms, args=emulator_args)
    deployment.start_celery()
    for _ in range(workers):
        start_relay_worker(deployment)
    wait_until(lambda: emulator.app_connections() >= 1, 30, "a relay worker to connect")
    return emulator


def start_relay_worker(deployment: Deployment) -> ManagedProcess:
    return deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))


def mixed_bodies(count: int) -> list[str]:
    """Mentions of Athena (about a second of answer) and of ``slow``, alternating."""
    return [ASK_SLOW if index % 2 else ASK_ATHENA for index in range(count)]


def assert_recovered(deployment: Deployment, timeout: float = 60) -> None:
    """After the last fault, new mentions go through end to end (not part of the tally)."""
    after = deployment.mention(ASK_ATHENA, ASK_ATHENA, title="After the faults")
    rows = deployment.wait_until_ended(after, timeout)
    assert [row.status for row in rows] == ["replied", "replied"], [r.brief() for r in rows]


def rounds(total: int, count: int) -> list[int]:
    """``total`` mentions split into ``count`` batches as even as can be."""
    base, extra = divmod(total, count)
    return [base + (1 if index < extra else 0) for index in range(count) if base or index < extra]


def any_streaming(rows: list[RunRow]) -> bool:
    return any(row.status == "streaming" for row in rows)


def wait_for_streaming(deployment: Deployment, mentions: Sequence[Mention], timeout: float) -> bool:
    """Wait until one of ``mentions`` streams; ``False`` (not a failure) if none did in time.

    A fault aimed "mid-stream" still lands if the stream was quicker than the wait:
    the scenario then tests a fault between answers, which must hold as well.
    """
    try:
        deployment.wait_for_runs(mentions, any_streaming, timeout, "a run to stream")
    except AssertionError:
        return False
    return True


def leader(deployment: Deployment) -> ManagedProcess | None:
    """The live relay worker that holds the lock and says it is connected."""
    status = deployment.worker_status()
    if status is None or status.state != "connected":
        return None
    if deployment.lock_holder() != status.identity:
        return None
    found = [w for w in deployment.relay_workers() if w.pid == status.pid and w.alive]
    return found[0] if found else None
