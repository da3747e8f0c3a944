"""``manage.py relay_worker`` as its own process, in a deployment of real processes.

Each test starts the Relay emulator, a Celery worker and one or two relay workers
against its own PostgreSQL database and Redis server, makes mentions through the
ORM, and checks what ends up in the database: run states, reply comments, and what
``relay_status`` and the processes' logs say.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from relaybridge.emulator.agents import summarize
from relaybridge.worker.status import STATUS_REFRESH_S
from tests.deployment.harness import CommandResult, Deployment, Mention, RunRow
from tests.deployment.processes import ManagedProcess
from tests.deployment.waiting import Checks, assert_stays, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

#: Short enough for the takeover test to finish quickly, long enough for a renewal.
LOCK_TTL = 3.0
ASK_ATHENA = "@athena summarize this task"


# -- helpers -----------------------------------------------------------------------------


def status_pid(status: CommandResult) -> int:
    found = re.search(r"\(pid (\d+)\)", status.output)
    assert found, f"relay_status names no worker process:\n{status.output}"
    return int(found.group(1))


def any_streaming(rows: list[RunRow]) -> bool:
    return any(row.status == "streaming" for row in rows)


def assert_one_reply_per_run(deployment: Deployment, mentions: list[Mention]) -> None:
    """A replied run has exactly one reply comment, linked; any other run has none."""
    for mention in mentions:
        [run] = deployment.runs([mention.comment_id])
        replies = deployment.agent_comments(mention.task_id)
        if run.status == "replied":
            assert [c.id for c in replies] == [run.reply_comment_id], run.brief()
            assert replies[0].agent_id == run.agent_id
            assert replies[0].author_id is None
        else:
            assert replies == [], f"{run.brief()} has reply comments {replies}"


def connect_attempts(worker: ManagedProcess) -> int:
    """Connection attempts, from the log lines the test settings stamp with the pid.

    Counting stamped lines only counts attempts, however many handlers print them.
    """
    return len(worker.log_lines(f" {worker.pid} relaybridge.worker INFO connecting to "))


def leader_reported(deployment: Deployment, worker: ManagedProcess) -> bool:
    """The status record says ``worker`` is connected and holds the lock."""
    status = deployment.worker_status()
    return (
        status is not None
        and status.state == "connected"
        and status.pid == worker.pid
        and deployment.lock_holder() == status.identity
    )


# -- the tests ---------------------------------------------------------------------------


def test_a_mention_ends_with_exactly_one_reply_comment_by_the_agent(
    deployment: Deployment,
) -> None:
    deployment.start_emulator(token_delay_ms=20)
    deployment.start_celery()
    worker = deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))

    [mention] = deployment.mention(ASK_ATHENA)
    [run] = deployment.wait_until_ended([mention], 20)

    assert run.status == "replied", run.brief()
    assert run.event_id, "the run never recorded Relay's event id"
    assert run.error_code == "" and run.partial_text == ""
    assert run.payload is not None and run.payload["relaybridge_run"] == str(run.run_id)
    [reply] = deployment.agent_comments(mention.task_id)
    assert reply.id == run.reply_comment_id
    assert reply.agent_id == "athena" and reply.author_id is None
    # Athena's answer is a pure function of the payload the worker sent.
    expected = summarize(run.payload)
    assert expected.startswith('Summary of "Q2 Roadmap Review #1".')
    assert reply.body == expected
    # Nothing turns up later: no second reply, the worker still runs.
    assert_stays(
        lambda: len(deployment.agent_comments(mention.task_id)) == 1 and worker.alive,
        1.0,
        "one reply and a running worker",
    )


def test_a_prefork_celery_worker_hands_runs_over_from_its_forked_children(
    deployment: Deployment,
) -> None:
    """Celery's default pool forks its children: each hands its runs to the relay worker
    on an event loop of its own (relaybridge.sync_sends), none waits for the sweep."""
    deployment.start_emulator(token_delay_ms=5)
    celery = deployment.start_celery(pool="prefork", concurrency=2)
    deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))
    mentions = deployment.mention(*[f"{ASK_ATHENA} ({n})" for n in range(6)])
    runs = deployment.wait_until_ended(mentions, 30)
    assert [run.status for run in runs] == ["replied"] * 6, [run.brief() for run in runs]
    handed_over = celery.log_lines("relaybridge.dispatch_run[")
    sent = [line for line in handed_over if "succeeded" in line and "'sent'" in line]
    assert len(sent) == 6, celery.log_text()
    assert all("ForkPoolWorker" in line for line in sent), celery.log_text()
    assert not celery.log_lines("waits for the sweep"), celery.log_text()


def test_each_connection_attempt_is_logged_once(deployment: Deployment) -> None:
    deployment.start_emulator()
    worker = deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))
    wait_until(lambda: worker.log_lines("connected to"), 20, "the worker to connect")
    assert connect_attempts(worker) == 1
    # An operator reads these lines; each event is one line, not one per handler.
    assert len(worker.log_lines("connecting to")) == 1, worker.log_text()
    assert len(worker.log_lines("connected to")) == 1, worker.log_text()


def test_relay_killed_mid_stream_every_run_ends_once_and_the_worker_reconnects(
    deployment: Deployment,
) -> None:
    # Relay forgets its open events when it dies; the watchdog must end those runs.
    deployment.settings.update(RELAYBRIDGE_STALL_TIMEOUT="4", RELAYBRIDGE_SWEEP_INTERVAL="2")
    emulator = deployment.start_emulator(token_delay_ms=60)
    deployment.start_celery()
    worker = deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))
    wait_until(lambda: emulator.app_connections() == 1, 20, "the worker to connect")

    mentions = deployment.mention(*[ASK_ATHENA] * 5)
    deployment.wait_for_runs(mentions, any_streaming, 20, "a run to be streaming")
    emulator.kill()
    emulator.start()
    wait_until(lambda: emulator.app_connections() == 2, 15, "the worker to reconnect")

    rows = deployment.wait_until_ended(mentions, 25)
    for row in rows:
        assert row.status in {"replied", "failed"}, row.brief()
        if row.status == "failed":
            assert row.error_code and row.error_message, row.brief()
            # What had streamed before Relay died is kept, and it is what Athena said.
            assert row.payload is not None
            assert summarize(row.payload).startswith(row.partial_text), row.brief()
    assert_one_reply_per_run(deployment, mentions)

    # The new connection carries new work end to end.
    [after] = deployment.mention(ASK_ATHENA, title="After the restart")
    [run] = deployment.wait_until_ended([after], 20)
    assert run.status == "replied", run.brief()
    assert_one_reply_per_run(deployment, [*mentions, after])
    assert worker.alive


def test_two_workers_one_connection_and_the_standby_takes_over_after_kill_9(
    deployment: Deployment,
) -> None:
    deployment.settings.update(RELAYBRIDGE_STALL_TIMEOUT="20", RELAYBRIDGE_SWEEP_INTERVAL="1")
    # `slow` streams for about 7 s: longer than a takeover, so its answer arrives
    # on the standby's new connection.
    emulator = deployment.start_emulator(token_delay_ms=20, args=["--agent-delay-ms", "slow=800"])
    deployment.start_celery()
    workers = [deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL)) for _ in range(2)]

    wait_until(lambda: emulator.app_connections() == 1, 20, "a worker to connect")
    connected = wait_until(
        lambda: [w for w in workers if w.log_lines("connected to")], 5, "the connected worker"
    )
    assert len(connected) == 1, "both relay workers connected to Relay"
    [leader] = connected
    [standby] = [w for w in workers if w is not leader]
    wait_until(lambda: leader_reported(deployment, leader), 10, "the leader's status record")
    # Longer than the status refresh period: every worker has rewritten its record.
    assert_stays(
        lambda: Checks(
            one_app_connection=emulator.open_app_connections() == 1,
            standby_never_connects=connect_attempts(standby) == 0,
            status_names_the_leader=leader_reported(deployment, leader),
        ),
        STATUS_REFRESH_S + 1,
        "one app connection, from the leader, and a status record naming the leader",
    )
    assert connect_attempts(leader) == 1
    status = deployment.relay_status()
    assert status.returncode == 0 and "connected to Relay" in status.output, status.output
    assert status_pid(status) == leader.pid

    in_flight = deployment.mention("@slow take your time", title="In flight")
    deployment.wait_for_runs(in_flight, any_streaming, 20, "the slow run to stream")
    leader.send_signal(signal.SIGKILL)
    leader.wait(timeout=5)
    killed_at = time.monotonic()
    # Mentions made while nobody holds the connection wait for the next leader.
    pending = deployment.mention(ASK_ATHENA, ASK_ATHENA, title="While leaderless")

    wait_until(lambda: emulator.app_connections() == 2, LOCK_TTL + 5, "the standby to connect")
    took = time.monotonic() - killed_at
    assert took <= LOCK_TTL + 3, f"the takeover took {took:.1f} s with a {LOCK_TTL:g} s TTL"
    assert connect_attempts(standby) == 1
    wait_until(lambda: leader_reported(deployment, standby), 10, "the new leader's status")

    rows = deployment.wait_until_ended([*in_flight, *pending], 25)
    assert [row.status for row in rows] == ["replied"] * 3, [row.brief() for row in rows]
    assert_one_reply_per_run(deployment, [*in_flight, *pending])
    assert deployment.agent_comments(in_flight[0].task_id)[0].body == (
        "Sorry for the wait, here is my slow answer."
    )


def test_sigterm_mid_stream_drains_the_run_then_exits_0(deployment: Deployment) -> None:
    deployment.settings.update(RELAYBRIDGE_SHUTDOWN_TIMEOUT="15")
    deployment.start_emulator(token_delay_ms=20, args=["--agent-delay-ms", "slow=300"])
    deployment.start_celery()
    worker = deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))

    mentions = deployment.mention("@slow take your time")
    deployment.wait_for_runs(mentions, any_streaming, 20, "the run to stream")
    worker.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()

    returncode = worker.wait(timeout=20)
    took = time.monotonic() - signalled_at
    assert returncode == 0, worker.log_text()
    assert took < 15, f"the drain took {took:.1f} s, past the shutdown timeout"
    # Only this worker could have finished the run, and it has exited: the reply
    # was saved before it did.
    [run] = deployment.runs([m.comment_id for m in mentions])
    assert run.status == "replied", run.brief()
    assert_one_reply_per_run(deployment, mentions)
    assert deployment.relay_status().returncode == 1  # gone, and says so


def test_a_second_signal_exits_at_once_and_leaves_the_run_recoverable(
    deployment: Deployment,
) -> None:
    deployment.settings.update(RELAYBRIDGE_SHUTDOWN_TIMEOUT="30")
    deployment.start_emulator(token_delay_ms=20, args=["--agent-delay-ms", "slow=1000"])
    deployment.start_celery()
    worker = deployment.start_relay_worker("--lock-ttl", str(LOCK_TTL))

    mentions = deployment.mention("@slow take your time")
    deployment.wait_for_runs(mentions, any_streaming, 20, "the run to stream")
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: worker.log_lines("stopping"), 5, "the worker to start draining")
    assert worker.alive, "the first signal must drain, not exit"
    worker.send_signal(signal.SIGTERM)
    # Draining would take the rest of the stream (about 7 s); exiting at once does not.
    worker.wait(timeout=4)

    [run] = deployment.runs([m.comment_id for m in mentions])
    assert run.status in {"accepted", "streaming"}, run.brief()
    assert deployment.agent_comments(mentions[0].task_id) == []


@pytest.mark.parametrize("refusal", ["close_4001", "http_401"])
def test_a_bad_token_backs_off_and_relay_status_reports_it(
    deployment: Deployment, refusal: str
) -> None:
    emulator = deployment.start_emulator(args=["--bad-token", refusal])
    worker = deployment.start_relay_worker(
        "--lock-ttl", str(LOCK_TTL), env={"RELAY_APP_TOKEN": "rlk_test_revoked"}
    )

    wait_until(lambda: connect_attempts(worker), 20, "the first connection attempt")
    assert_stays(
        lambda: connect_attempts(worker) <= 2 and worker.alive,
        5.0,
        "at most two connection attempts",
    )
    status = wait_until(
        lambda: (s := deployment.relay_status()).returncode == 2 and s,
        10,
        "relay_status to report the auth failure",
    )
    assert "Relay rejected the app token" in status.output
    assert "rlk_test_revoked" not in status.output + worker.log_text()
    assert emulator.app_connections() == 0
