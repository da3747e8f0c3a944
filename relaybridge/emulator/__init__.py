"""A local Relay for development and tests (see ``relay-protocol.md``).

Start it from the command line (``python -m relaybridge.emulator``), from Django
(``manage.py relay_emulator``), or in-process::

    async with RelayEmulator(EmulatorConfig(app_tokens={"rlk_demo_x": "demo"})) as relay:
        ...  # connect to relay.url with the token; relay.set_agent_offline("athena") …

It imports nothing from Django.
"""

from .agents import AgentEvent, AgentOutput, ScriptedAgent, builtin_agents
from .config import BadTokenMode, EmulatorConfig
from .limits import PLANS, SCALE, STARTER, UNLIMITED, Plan
from .server import RelayEmulator

__all__ = [
    "PLANS",
    "SCALE",
    "STARTER",
    "UNLIMITED",
    "AgentEvent",
    "AgentOutput",
    "BadTokenMode",
    "EmulatorConfig",
    "Plan",
    "RelayEmulator",
    "ScriptedAgent",
    "builtin_agents",
]
