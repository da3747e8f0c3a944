"""The emulator as a process: the CLI contract, EmulatorProcess, the management command."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaybridge.testing import EmulatorProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


def read_first_line(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the emulator"
    return proc.stdout.readline().strip()


async def session_key_for(url: str, token: str) -> str:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "event",
                    "agent_id": "klyve",
                    "thread_id": "t",
                    "payload": {"message": "x"},
                }
            )
        )
        async with asyncio.timeout(3):
            answer = json.loads(await ws.recv())
    key: str = answer["session_key"]
    return key


def run_and_stop(
    cmd: list[str], token: str, env: dict[str, str] | None = None, *, stderr: Path | None = None
) -> str:
    """Start ``cmd``, check its first line and that it serves, SIGINT it; return the key."""
    # The with-blocks close the log and the stdout pipe (an open pipe is a ResourceWarning).
    with (
        open(stderr or os.devnull, "w") as err,
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env
        ) as proc,
    ):
        try:
            first = read_first_line(proc)
            assert first.startswith("listening on ws://127.0.0.1:")
            port = int(first.rsplit(":", 1)[1])
            assert port > 0
            key = asyncio.run(session_key_for(f"ws://127.0.0.1:{port}/v1/ws/app", token))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
            return key
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_prints_listening_line_first_and_stops_on_sigint(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "relaybridge.emulator", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--app-token", "rlk_demo_abc123", "--app-token", "rlk_x_y=other"]
    cmd += ["--log-level", "DEBUG"]
    log = tmp_path / "stderr.log"
    assert run_and_stop(cmd, "rlk_demo_abc123", stderr=log) == "relay:klyve:demo:t"
    # Even at DEBUG the log names the app, never its token.
    text = log.read_text()
    assert "app demo connected" in text
    assert "rlk_demo_abc123" not in text and "rlk_x_y" not in text


def test_cli_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "relaybridge.emulator", "--port", str(port)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=15, cwd=ROOT)
    assert done.returncode == 1
    assert done.stdout == "" and "cannot listen" in done.stderr


def test_management_command_defaults_to_relay_app_token() -> None:
    env = {
        **os.environ,
        "RELAY_APP_TOKEN": "rlk_fromenv_secret",
        "DJANGO_SETTINGS_MODULE": "tests.emulator.command_settings",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "django", "relay_emulator", "--port", "0"]
    assert run_and_stop(cmd, "rlk_fromenv_secret", env) == "relay:klyve:fromenv:t"


def test_management_command_class_runs_without_project_apps() -> None:
    """The command itself, independent of the rest of the relaybridge app."""
    script = (
        "import django; from django.conf import settings;"
        "settings.configure(INSTALLED_APPS=[]); django.setup();"
        "from relaybridge.management.commands.relay_emulator import Command;"
        "Command().run_from_argv(['manage.py', 'relay_emulator', '--port', '0',"
        " '--app-token', 'rlk_cmd_1=cmd'])"
    )
    assert run_and_stop([sys.executable, "-c", script], "rlk_cmd_1") == "relay:klyve:cmd:t"


async def ping(url: str, token: str) -> None:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv()) == {"type": "pong"}


def test_emulator_process_kill_and_restart_on_the_same_port() -> None:
    async def killed_while_connected(relay: EmulatorProcess) -> None:
        headers = {"Authorization": f"Bearer {relay.app_token}"}
        async with connect(relay.url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            async with asyncio.timeout(3):
                await ws.recv()
            await asyncio.to_thread(relay.kill)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(3):
                    await ws.recv()

    with EmulatorProcess() as relay:
        port = relay.port
        asyncio.run(killed_while_connected(relay))
        assert not relay.running
        relay.restart()
        assert relay.port == port and relay.running
        asyncio.run(ping(relay.url, relay.app_token))
        relay.terminate()
        assert not relay.running and relay.returncode == 0
    assert relay.url == f"ws://127.0.0.1:{port}/v1/ws/app"


def test_emulator_process_on_a_chosen_port() -> None:
    port = free_port()
    with EmulatorProcess(port=port, app_tokens={"rlk_mine_1": "mine"}) as relay:
        assert relay.port == port and relay.app_token == "rlk_mine_1"
        asyncio.run(ping(relay.url, "rlk_mine_1"))


def test_emulator_and_testing_helpers_import_without_django() -> None:
    script = (
        "import sys, relaybridge.testing, relaybridge.emulator.cli;"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django'"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=15)
    assert done.returncode == 0, done.stderr
