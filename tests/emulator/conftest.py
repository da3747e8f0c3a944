"""Fixtures for the emulator tests: a fresh in-process Relay on a free port per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from relaybridge.emulator import RelayEmulator
from relaybridge.testing import running_emulator

#: External agents the default fixture registers (token → agent id).
SCOUT_TOKEN = "rla_scout_k3y"
ATHENA_EXTERNAL_TOKEN = "rla_athena_ext"
AGENT_TOKENS = {SCOUT_TOKEN: "scout", ATHENA_EXTERNAL_TOKEN: "athena"}

MakeRelay = Callable[..., AbstractAsyncContextManager[RelayEmulator]]


@pytest.fixture
def make_relay() -> MakeRelay:
    """``async with make_relay(**config_overrides) as relay`` for tests that need options."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[RelayEmulator]:
        overrides.setdefault("agent_tokens", AGENT_TOKENS)
        return running_emulator(**overrides)

    return make


@pytest.fixture
async def relay(make_relay: MakeRelay) -> AsyncIterator[RelayEmulator]:
    async with make_relay() as emulator:
        yield emulator
