"""Minimal Django settings to run the ``relay_emulator`` command in isolation.

Only relaybridge is installed, so the command's test does not depend on the
example project's apps.
"""

SECRET_KEY = "relaybridge-emulator-command-test"
INSTALLED_APPS = ["relaybridge"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
