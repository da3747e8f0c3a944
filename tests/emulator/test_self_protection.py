"""The emulator protects itself like a hosted service: events that never end time out,
agents that stop answering pings are dropped (their open events fail AGENT_OFFLINE),
and app connections are pinged and closed when they no longer answer."""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaybridge.emulator.cli import add_arguments, config_from_args
from relaybridge.emulator.config import EmulatorConfig
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import ATHENA_EXTERNAL_TOKEN, MakeRelay
from .wire import TIMEOUT, app_message, open_peer


def parsed(*argv: str) -> EmulatorConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)), {})


def test_the_event_timeout_and_the_pings_are_on_by_default() -> None:
    for config in (EmulatorConfig(), parsed()):
        assert config.event_timeout_s == 300.0
        assert config.agent_pong_timeout_s == 10.0
        assert config.app_ping_interval_s == 30.0
    off = parsed("--event-timeout", "0", "--agent-pong-timeout", "0", "--app-ping-interval", "0")
    assert (off.event_timeout_s, off.agent_pong_timeout_s, off.app_ping_interval_s) == (
        None,
        None,
        None,
    )
    assert parsed("--event-timeout", "2.5").event_timeout_s == 2.5


async def test_an_agent_that_stops_answering_pings_is_dropped_and_its_events_fail(
    make_relay: MakeRelay,
) -> None:
    async with (
        make_relay(agent_ping_interval_s=0.05, agent_pong_timeout_s=0.1) as relay,
        open_peer(relay.agent_url, query=ATHENA_EXTERNAL_TOKEN) as agent,
        open_peer(relay.url, TEST_APP_TOKEN) as app,
    ):
        accepted = await app.submit("athena", "t", app_message())
        event = await agent.recv_skipping_pings()
        assert event["event_id"] == accepted["event_id"]
        # The agent goes quiet: no pong, no token. Relay drops it and ends its event.
        (error,) = await app.until_terminal(accepted["event_id"])
        assert error["type"] == "error" and error["code"] == "AGENT_OFFLINE"
        assert relay.stats.agents_dropped == 1
        assert relay.in_flight("test") == 0


async def test_an_agent_that_answers_pings_keeps_its_events(make_relay: MakeRelay) -> None:
    async with (
        make_relay(agent_ping_interval_s=0.02, agent_pong_timeout_s=0.2) as relay,
        open_peer(relay.agent_url, query=ATHENA_EXTERNAL_TOKEN) as agent,
        open_peer(relay.url, TEST_APP_TOKEN) as app,
    ):
        accepted = await app.submit("athena", "t", app_message())
        pongs = 0
        while pongs < 5:  # a full second of pings, every one answered
            frame = await agent.recv()
            if frame["type"] == "ping":
                await agent.send({"type": "pong"})
                pongs += 1
        await agent.send({"type": "reply", "event_id": accepted["event_id"], "content": "ok"})
        (reply,) = await app.until_terminal(accepted["event_id"])
        assert reply["type"] == "reply" and relay.stats.agents_dropped == 0


async def test_app_connections_are_pinged_and_closed_when_silent(make_relay: MakeRelay) -> None:
    async with make_relay(app_ping_interval_s=0.05, app_pong_timeout_s=0.1) as relay:
        headers = {"Authorization": f"Bearer {TEST_APP_TOKEN}"}
        async with connect(relay.url, additional_headers=headers) as ws:
            async with asyncio.timeout(TIMEOUT):
                assert json.loads(await ws.recv()) == {"type": "ping"}
                await ws.send(json.dumps({"type": "pong"}))
                assert json.loads(await ws.recv()) == {"type": "ping"}
                # Answered once; now silent: the next wait ends with the connection.
                try:
                    while True:
                        assert json.loads(await ws.recv()) == {"type": "ping"}
                except ConnectionClosed:
                    pass
        assert relay.stats.app_pings_sent >= 2 and relay.stats.apps_dropped == 1
