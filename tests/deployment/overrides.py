"""What the multi-process tests change in a host's settings, whichever host it is.

A few timing settings that the tests shorten through the environment (a watchdog
that waits 120 s cannot be tested in 30 s) -- only settings relaybridge already
has; unset variables keep its defaults -- and logs whose lines carry a timestamp
and a process id, so that the logs of several processes can be compared.
"""

from __future__ import annotations

import os
from typing import Any

_FLOAT_SETTINGS = (
    "RELAYBRIDGE_STALL_TIMEOUT",
    "RELAYBRIDGE_SHUTDOWN_TIMEOUT",
    "RELAYBRIDGE_SWEEP_INTERVAL",
    "RELAYBRIDGE_REDISPATCH_AFTER",
    "RELAYBRIDGE_RESEND_GRACE",
)
_INT_SETTINGS = ("RELAYBRIDGE_STREAM_FLUSH_MS", "RELAYBRIDGE_MAX_SOCKETS_PER_USER")


def deployment_overrides() -> dict[str, Any]:
    """Settings to lay over a host's settings module (``globals().update(...)``)."""
    overrides: dict[str, Any] = {}
    for name in _FLOAT_SETTINGS:
        if os.environ.get(name):
            overrides[name] = float(os.environ[name])
    for name in _INT_SETTINGS:
        if os.environ.get(name):
            overrides[name] = int(os.environ[name])
    # The level still comes from RELAYBRIDGE_LOG.
    overrides["LOGGING"] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "stamped": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "stamped"}},
        "loggers": {
            "relaybridge": {
                "handlers": ["console"],
                "level": os.environ.get("RELAYBRIDGE_LOG", "INFO"),
            }
        },
    }
    return overrides
