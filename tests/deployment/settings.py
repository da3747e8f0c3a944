"""Settings for the processes the multi-process tests start.

The example project's settings, plus a few timing settings that the tests shorten
through the environment (a watchdog that waits 120 s cannot be tested in 30 s).
Only settings relaybridge already has are read; unset variables keep its defaults.
"""

from __future__ import annotations

import os

from project.settings import *  # noqa: F403

_FLOAT_SETTINGS = (
    "RELAYBRIDGE_STALL_TIMEOUT",
    "RELAYBRIDGE_SHUTDOWN_TIMEOUT",
    "RELAYBRIDGE_SWEEP_INTERVAL",
    "RELAYBRIDGE_REDISPATCH_AFTER",
)
_INT_SETTINGS = ("RELAYBRIDGE_STREAM_FLUSH_MS",)

for _name in _FLOAT_SETTINGS:
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])
for _name in _INT_SETTINGS:
    if os.environ.get(_name):
        globals()[_name] = int(os.environ[_name])

# Timestamps and process ids make the logs of several processes comparable when a
# test fails; the level still comes from RELAYBRIDGE_LOG.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "stamped": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "stamped"}},
    "loggers": {
        "relaybridge": {"handlers": ["console"], "level": os.environ.get("RELAYBRIDGE_LOG", "INFO")}
    },
}
