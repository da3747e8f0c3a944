"""Command line of the local Relay, shared by ``python -m relaybridge.emulator``
and the ``relay_emulator`` management command.

The first line on standard output is always ``listening on ws://HOST:PORT``
(``wss://`` with ``--tls-cert`` and ``--tls-key``)
(flushed), so a parent process can start the emulator on port 0 and learn the
port. Everything else goes to standard error through logging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

from .config import (
    AGENT_TOKEN_PREFIX,
    APP_TOKEN_PREFIX,
    DEFAULT_APP_TOKEN,
    BadTokenMode,
    EmulatorConfig,
    build_token_table,
    parse_allow_spec,
)
from .faults import DeliveryFaults
from .limits import PLANS
from .load import LoadProfile
from .server import RelayEmulator

DEFAULT_PORT = 8765
LISTENING_PREFIX = "listening on "


class Output(Protocol):
    """Where the ``listening on`` line goes (stdout, or Django's command output)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    add(
        "--app-token",
        action="append",
        default=[],
        metavar="TOKEN[=APP_ID]",
        help="accept this app token (repeatable); default: $RELAY_APP_TOKEN or a demo token",
    )
    add(
        "--agent-token",
        action="append",
        default=[],
        metavar="TOKEN[=AGENT_ID]",
        help="register an external agent that may connect on /v1/ws/agent (repeatable)",
    )
    add(
        "--allow",
        action="append",
        default=[],
        metavar="APP_ID=AGENT[,AGENT…]",
        help="restrict an app to these agents (others get NOT_ALLOWED)",
    )
    add("--plan", choices=sorted(PLANS), default="starter", help="rate-limit plan")
    add("--bad-token", choices=[m.value for m in BadTokenMode], default=BadTokenMode.CLOSE_4001)
    add("--queue-offline", action="store_true", help="queue events for offline agents")
    add("--token-delay-ms", type=float, default=30.0, help="delay between streamed tokens")
    add(
        "--agent-delay-ms",
        action="append",
        default=[],
        metavar="AGENT_ID=MS",
        help="per-agent token delay override (repeatable)",
    )
    add("--agent-ping-interval", type=float, default=30.0, metavar="SECONDS")
    add(
        "--agent-pong-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="drop an agent silent this long after a ping, failing its events (0: never)",
    )
    add(
        "--app-ping-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="ping app connections this often; close one silent after a ping (0: off)",
    )
    add(
        "--event-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="answer AGENT_TIMEOUT for events without a terminal frame after this long (0: off)",
    )
    add("--agents", default=None, metavar="ID[,ID…]", help="built-in agents to offer (default all)")
    add("--load-agent", action="store_true", help="offer the benchmark agent 'load'")
    add("--load-tokens", type=int, default=100, help="load agent: tokens per answer")
    add("--load-rate", type=float, default=20.0, help="load agent: tokens per second")
    add("--load-concurrency", type=int, default=0, help="load agent: answers at once (0: any)")
    add(
        "--duplicate-frames",
        type=float,
        default=0.0,
        metavar="RATE",
        help="send this share of accepted/reply/error frames twice",
    )
    add(
        "--delay-frames-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="hold each event frame back a random 0..MS (reorders frames across events)",
    )
    add(
        "--second-reply",
        type=float,
        default=0.0,
        metavar="RATE",
        help="send this share of finished events a second, different reply",
    )
    add("--fault-seed", type=int, default=None, help="seed of the delivery-fault dice")
    add("--tls-cert", default=None, metavar="PEM", help="serve wss:// with this certificate")
    add("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert")
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def config_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> EmulatorConfig:
    app_specs = list(args.app_token) or [env.get("RELAY_APP_TOKEN") or DEFAULT_APP_TOKEN]
    delays: dict[str, float] = {}
    for spec in args.agent_delay_ms:
        agent_id, sep, ms = spec.partition("=")
        if not sep:
            raise ValueError(f"expected AGENT_ID=MS, got {spec!r}")
        delays[agent_id] = float(ms)
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        app_tokens=build_token_table(app_specs, APP_TOKEN_PREFIX, "app"),
        agent_tokens=build_token_table(args.agent_token, AGENT_TOKEN_PREFIX, "agent"),
        allowed_agents=dict(parse_allow_spec(spec) for spec in args.allow),
        plan=PLANS[args.plan],
        bad_token=BadTokenMode(args.bad_token),
        queue_offline=args.queue_offline,
        token_delay_ms=args.token_delay_ms,
        agent_delay_ms=delays,
        agent_ping_interval_s=args.agent_ping_interval,
        agent_pong_timeout_s=args.agent_pong_timeout or None,
        app_ping_interval_s=args.app_ping_interval or None,
        event_timeout_s=args.event_timeout or None,
        builtin_agents=(
            None if args.agents is None else frozenset(a for a in args.agents.split(",") if a)
        ),
        delivery_faults=DeliveryFaults(
            duplicate_rate=args.duplicate_frames,
            max_delay_ms=args.delay_frames_ms,
            second_reply_rate=args.second_reply,
            seed=args.fault_seed,
        ),
        load_agent=(
            LoadProfile(args.load_tokens, args.load_rate, args.load_concurrency)
            if args.load_agent
            else None
        ),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


async def serve_until_signalled(config: EmulatorConfig, out: Output) -> None:
    """Run until SIGINT or SIGTERM, then close every connection cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with RelayEmulator(config) as relay:
        out.write(f"{LISTENING_PREFIX}{relay.base_url}\n")
        out.flush()
        await stop.wait()
        logging.getLogger(__name__).info("shutting down")


def run(config: EmulatorConfig, log_level: str, out: Output = sys.stdout) -> None:
    logging.basicConfig(
        level=log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_until_signalled(config, out))
    except OSError as exc:  # typically the port is taken
        logging.getLogger(__name__).error(
            "cannot listen on %s:%s: %s", config.host, config.port, exc.strerror or exc
        )
        raise SystemExit(1) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relaybridge.emulator",
        description="A local Relay: app and agent WebSocket endpoints with scripted agents.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, os.environ)
    except ValueError as exc:
        parser.error(str(exc))
    run(config, args.log_level)
    return 0
