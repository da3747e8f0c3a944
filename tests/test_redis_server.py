"""The tests' own Redis servers: started on a free port, and the only ones ever flushed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_redis_server
from tests.redis_server import NotOurServer, RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def ours(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer(tmp_path / "ours.log") as server:
        yield server


def test_a_server_it_started_is_flushed_one_database_at_a_time(ours: RedisServer) -> None:
    with ours.client(0) as zero, ours.client(1) as one:
        zero.set("a", "1")
        one.set("b", "2")
        ours.flush(1)
        assert zero.get("a") == b"1"
        assert one.dbsize() == 0


def test_a_server_on_a_port_it_did_not_launch_is_never_flushed(
    ours: RedisServer, tmp_path: Path
) -> None:
    # A helper aimed at a running server it did not start (as the Redis REDIS_URL
    # names would be): the flush is refused and the data stays.
    stranger = RedisServer(tmp_path / "stranger.log", port=ours.port)
    with ours.client() as client:
        client.set("somebody's", "data")
        with pytest.raises(NotOurServer, match=f"refusing to flush 127.0.0.1:{ours.port}"):
            stranger.flush()
        assert client.get("somebody's") == b"data"


def test_a_server_that_took_over_a_dead_ones_port_is_never_flushed(
    ours: RedisServer, tmp_path: Path
) -> None:
    ours.kill()
    # Another server now listens where ours did: the port alone proves nothing.
    successor = RedisServer(tmp_path / "successor.log", port=ours.port)
    with successor, successor.client() as client:
        assert successor.port == ours.port
        client.set("kept", "yes")
        with pytest.raises(NotOurServer):
            ours.flush()
        assert client.get("kept") == b"yes"


def test_starting_on_a_port_already_served_moves_to_a_free_one(
    ours: RedisServer, tmp_path: Path
) -> None:
    # The free port was taken between choosing it and binding it: the server that
    # answers there is somebody else's, so the helper must not take it for its own.
    with RedisServer(tmp_path / "late.log", port=ours.port) as late:
        assert late.port != ours.port
        with late.client() as client:
            assert client.info("server")["process_id"] == late.process.pid  # type: ignore[union-attr]
