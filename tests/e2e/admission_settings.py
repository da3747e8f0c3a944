"""The example project with admission rules, for the browser test of refusals.

Klyve needs a permission the test's person lacks; Athena answers each person once
an hour.
"""

from project.settings import *  # noqa: F403

RELAYBRIDGE_AGENT_PERMISSIONS = {"klyve": "tasks.change_task"}
RELAYBRIDGE_QUOTAS = [{"scope": "person", "agent": "athena", "runs": 1, "per": "hour"}]
