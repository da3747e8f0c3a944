"""The status record and ``relay_status``: what an operator reads."""

from __future__ import annotations

import dataclasses
import os
import time
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command

from relaybridge.worker.status import (
    STATUS_CACHE_KEY,
    WorkerStatus,
    clear_status,
    read_status,
    write_status,
)


@pytest.fixture(autouse=True)
def _no_status() -> None:
    cache.delete(STATUS_CACHE_KEY)


def _status(**changes: object) -> WorkerStatus:
    status = WorkerStatus(
        state="connected",
        identity="host:abc",
        pid=os.getpid(),
        relay_url="wss://relay.example/v1/ws/app",
        connected_since=time.time() - 90,
        last_frame_at=time.time() - 1,
        in_flight=3,
        queued=1,
        agents=["athena", "klyve"],
    )
    for name, value in changes.items():
        setattr(status, name, value)
    return status


@pytest.mark.django_db
def test_no_record_means_no_worker() -> None:
    out = StringIO()
    call_command("relay_status", stdout=out)
    assert "No relay worker is running" in out.getvalue()
    with pytest.raises(SystemExit) as exited:
        call_command("relay_status", "--exit-code", stdout=StringIO())
    assert exited.value.code == 1


@pytest.mark.django_db
def test_a_connected_worker_is_described() -> None:
    write_status(_status().as_dict())
    out = StringIO()
    call_command("relay_status", stdout=out)
    text = out.getvalue()
    assert "connected to Relay" in text
    assert "runs in flight: 3 (waiting to send: 1)" in text
    assert "athena, klyve" in text
    assert "connected for:  2 min" in text


@pytest.mark.django_db
def test_an_auth_failure_is_reported_loudly() -> None:
    failing = _status(state="auth_failed", last_error="Relay refused the app token (HTTP 401)")
    write_status(failing.as_dict())
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("relay_status", "--exit-code", stdout=out)
    assert exited.value.code == 2
    text = out.getvalue()
    assert "Relay rejected the app token" in text
    assert "HTTP 401" in text
    assert "RELAY_APP_TOKEN" in text


def test_round_trip_and_tolerance_of_unknown_fields() -> None:
    status = _status()
    before = time.time()
    write_status(status.as_dict())
    stored = read_status()
    assert stored is not None and stored.updated_at >= before
    assert dataclasses.replace(stored, updated_at=status.updated_at) == status
    cache.set(STATUS_CACHE_KEY, {**status.as_dict(), "from_a_newer_version": 1})
    assert read_status() == status
    cache.set(STATUS_CACHE_KEY, "garbage")
    assert read_status() is None


def test_a_standby_does_not_erase_the_leaders_record() -> None:
    write_status(_status(identity="leader").as_dict())
    clear_status("standby")
    assert read_status() is not None
    clear_status("leader")
    assert read_status() is None


def test_a_standby_never_hides_the_leaders_record() -> None:
    write_status(_status(identity="leader").as_dict())
    write_status(_status(identity="standby", state="standby").as_dict())
    record = read_status()
    assert record is not None and record.identity == "leader"
    clear_status("leader")
    write_status(_status(identity="standby", state="standby").as_dict())
    record = read_status()
    assert record is not None and record.state == "standby"
