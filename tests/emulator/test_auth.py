"""Handshake: endpoints, both auth styles, header precedence, bad tokens (protocol §1)."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from relaybridge.emulator import BadTokenMode, RelayEmulator
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import SCOUT_TOKEN, MakeRelay
from .wire import Peer, open_peer

UNAUTHORIZED = {
    "type": "error",
    "event_id": None,
    "agent_id": None,
    "error": "Invalid or revoked token",
    "code": "UNAUTHORIZED",
}


async def assert_pongs(peer: Peer) -> None:
    await peer.send({"type": "ping"})
    assert await peer.recv() == {"type": "pong"}


async def assert_refused_4001(peer: Peer) -> None:
    assert await peer.recv() == UNAUTHORIZED
    with pytest.raises(ConnectionClosed) as closed:
        await peer.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4001


async def test_bearer_header(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        await assert_pongs(peer)


async def test_query_parameter(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, query=TEST_APP_TOKEN) as peer:
        await assert_pongs(peer)


async def test_header_wins_over_query(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN, query="rlk_test_wrong") as peer:
        await assert_pongs(peer)
    async with open_peer(relay.url, "rlk_test_wrong", query=TEST_APP_TOKEN) as peer:
        await assert_refused_4001(peer)


@pytest.mark.parametrize("token", ["rlk_test_revoked", None])
async def test_bad_or_missing_token_gets_error_frame_and_4001(
    relay: RelayEmulator, token: str | None
) -> None:
    async with open_peer(relay.url, token) as peer:
        await assert_refused_4001(peer)


async def test_http_401_mode_refuses_the_upgrade(make_relay: MakeRelay) -> None:
    async with make_relay(bad_token=BadTokenMode.HTTP_401) as relay:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(relay.url, additional_headers={"Authorization": "Bearer nope"}):
                pass
        assert refused.value.response.status_code == 401
        async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
            await assert_pongs(peer)


async def test_app_token_on_agent_endpoint_is_a_bad_token(relay: RelayEmulator) -> None:
    async with open_peer(relay.agent_url, TEST_APP_TOKEN) as peer:
        await assert_refused_4001(peer)


async def test_agent_token_on_app_endpoint_is_a_bad_token(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, SCOUT_TOKEN) as peer:
        await assert_refused_4001(peer)


async def test_agent_token_on_agent_endpoint(relay: RelayEmulator) -> None:
    async with open_peer(relay.agent_url, query=SCOUT_TOKEN) as peer:
        await assert_pongs(peer)
        assert relay.agent_connected("scout")


async def test_unknown_path_is_404(relay: RelayEmulator) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            relay.base_url + "/v1/ws/nope",
            additional_headers={"Authorization": f"Bearer {TEST_APP_TOKEN}"},
        ):
            pass
    assert refused.value.response.status_code == 404


async def test_app_ids_come_from_the_table_not_the_token(make_relay: MakeRelay) -> None:
    # An id containing "_" must survive intact: nothing splits the token.
    async with (
        make_relay(app_tokens={"rlk_my_app_x9": "my_app", "opaque-token": "other_app"}) as relay,
        open_peer(relay.url, "opaque-token") as peer,
    ):
        answer = await peer.submit("klyve", "t-1", {"message": "hi"})
        assert answer["session_key"] == "relay:klyve:other_app:t-1"
