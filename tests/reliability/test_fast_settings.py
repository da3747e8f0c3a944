"""The scenarios' timing settings reach the processes they start.

They go through the environment, and the deployment's settings module takes only
the names it lists: one left out keeps relaybridge's default without a word, and a
scenario then runs with timings other than the ones it says (a resend grace of
10 s against a 5 s watchdog, say).
"""

from __future__ import annotations

import pytest

from tests.deployment.overrides import deployment_overrides

from .stack import FAST_SETTINGS

#: Read by the logging setup itself, not a setting of its own.
NOT_A_SETTING = {"RELAYBRIDGE_LOG"}


@pytest.mark.parametrize("name", sorted(set(FAST_SETTINGS) - NOT_A_SETTING))
def test_every_fast_setting_reaches_the_deployment_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, FAST_SETTINGS[name])
    overrides = deployment_overrides()
    assert name in overrides
    assert float(overrides[name]) == float(FAST_SETTINGS[name])
