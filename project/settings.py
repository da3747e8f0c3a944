"""Settings for the example host project.

With no environment this is the embedded default: SQLite, the in-memory channel
layer, Celery tasks run in-process, and the Relay emulator. ``DATABASE_URL`` and
``REDIS_URL`` switch to PostgreSQL and Redis; ``RELAY_APP_TOKEN`` switches to the
real Relay.

Safe by default: ``DEBUG`` is off unless ``DJANGO_DEBUG=1`` (``manage.py run_demo``
sets it for itself), and with ``DEBUG`` off the secret key must come from
``DJANGO_SECRET_KEY``. With ``DEBUG`` on and no ``DJANGO_SECRET_KEY``, a key is
generated once into ``.django-secret-key`` (git-ignored) next to ``manage.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project.development_key import development_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
DEVELOPMENT_KEY_FILE = BASE_DIR / ".django-secret-key"
if os.environ.get("DJANGO_SECRET_KEY"):
    SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
elif DEBUG:
    SECRET_KEY = development_secret_key(DEVELOPMENT_KEY_FILE)
else:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. With DEBUG off the example project needs a secret "
        'key from the environment (a long random string, e.g. from `python -c "import '
        'secrets; print(secrets.token_urlsafe(50))"`). For development set DJANGO_DEBUG=1 '
        "instead: a key is then generated into .django-secret-key."
    )
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "relaybridge",
    "project.tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy: scripts, styles and the page's WebSocket from this site only.
    "project.csp.content_security_policy",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "project.asgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
# Connections each process keeps to PostgreSQL (0: none, a new one per request).
DATABASE_POOL_SIZE = int(os.environ.get("DATABASE_POOL_SIZE") or 8)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    # Under ASGI Django advises a pool rather than persistent connections; with
    # neither, every request (a mention's POST, then the page it redirects to) opens
    # and closes a PostgreSQL connection of its own: a page cost 33.5 ms that way and
    # 23.0 ms from a pool (p50; two Daphne processes on one database, alternating).
    # A request holds its connection only while it runs; one more waits for a free one.
    # Each is checked as it leaves the pool (a round trip, about 0.1 ms): after a
    # database restart the pooled ones are dead, and a request must not get one.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
    }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
USE_TZ = True
TIME_ZONE = "UTC"

LOGIN_URL = "tasks:login"

# --- Redis or the embedded default -------------------------------------------------
# One Redis serves the channel layer, the cache (agent list, worker status), the
# Celery broker and relaybridge's stream buffer. Without it everything stays inside
# one process, which is what the one-command demo runs.
REDIS_URL = os.environ.get("REDIS_URL") or None

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # channels_redis waits on Redis for up to 5 s per receive; redis-py 8's
                # default 5 s socket timeout would cut every idle wait off with an error.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                # The capacity counts per Daphne *process* (all its pages share one
                # inbox), and group_send drops what does not fit without a word: the
                # default of 100 loses streamed text as soon as a process lags a little.
                "capacity": 5000,
            },
        },
        # What the pages watch goes through Redis Pub/Sub: one PUBLISH per message,
        # nothing for a Daphne process to fetch one message at a time (the list-based
        # layer above tops out near a thousand messages a second per process). A
        # page that was not listening misses nothing: it reads the snapshot on
        # connect. The intake stays on "default", which queues until it is read.
        "streams": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        },
    }
    RELAYBRIDGE_STREAM_LAYER = "streams"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # No broker server: tasks run in the process that queues them.
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True

CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery closes the database connection before and after every task (CONN_MAX_AGE has
# no say there) unless told to keep it for this many tasks: dispatch_run runs once per
# mention, and a new PostgreSQL connection for each is milliseconds on its way to Relay.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX") or 0) or None

# --- relaybridge -----------------------------------------------------------------------
# The app token and Relay's URL come only from the environment (RELAY_APP_TOKEN,
# RELAY_URL); never put either here.
RELAYBRIDGE_COMMENT_MODEL = "tasks.Comment"
RELAYBRIDGE_REDIS_URL = REDIS_URL
# Mentions work before a relay worker has ever run discovery: these are the
# emulator's built-in agents.
RELAYBRIDGE_AGENTS = ["athena", "klyve", "offline", "broken", "sleepy", "stall", "slow"]
# Follow-ups without a mention are off unless the environment sets a window (seconds).
RELAYBRIDGE_FOLLOW_UP_WINDOW = float(os.environ.get("DEMO_FOLLOW_UP_WINDOW") or 0) or None

# Everything goes to the console (stderr), for the process manager to keep: relaybridge's
# log at RELAYBRIDGE_LOG, and Django's errors (a request's traceback, a failed
# signal) whether DEBUG is on or not -- Django's default sends those to the console
# only with DEBUG on, and by mail (to ADMINS, unset here) with it off.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "relaybridge": {
            "handlers": ["console"],
            "level": os.environ.get("RELAYBRIDGE_LOG", "INFO"),
        },
    },
}
