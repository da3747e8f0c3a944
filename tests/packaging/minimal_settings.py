"""A host project's settings with relaybridge and nothing of the example project.

No ``tasks`` app. ``RELAYBRIDGE_COMMENT_MODEL`` comes from the environment variable
of the same name, and is left unset when that is absent.
"""

from __future__ import annotations

import os

SECRET_KEY = "relaybridge-minimal-settings"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "relaybridge",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("MINIMAL_SQLITE_PATH", ":memory:"),
    }
}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True

if "RELAYBRIDGE_COMMENT_MODEL" in os.environ:
    RELAYBRIDGE_COMMENT_MODEL = os.environ["RELAYBRIDGE_COMMENT_MODEL"]
