"""Settings of the cards host: django-contrib-comments on ``Card``, relaybridge on top.

Everything relaybridge needs from this host is in the last block: the comment
model, the shipped adapter, and which models' comments take part. The rest is an
ordinary Django project with ``django_comments`` (which needs the sites framework).
As in the example project, no environment means the embedded default (SQLite, the
in-memory layer, eager Celery); ``DATABASE_URL`` and ``REDIS_URL`` switch to
PostgreSQL and Redis, ``RELAY_APP_TOKEN`` to the real Relay.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

HERE = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "relaybridge-cards-insecure-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django_comments",
    "channels",
    "relaybridge",
    "tests.hosts.cards.cards",
]
SITE_ID = 1

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.hosts.cards.urls"
ASGI_APPLICATION = "tests.hosts.cards.asgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "card_list"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The host's templates first: its relaybridge/reply.html overrides relaybridge's.
        "DIRS": [HERE / "templates"],
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

DATABASES = {
    "default": dj_database_url.config(default=f"sqlite:///{HERE / 'cards.sqlite3'}", conn_max_age=0)
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
USE_TZ = True
TIME_ZONE = "UTC"

REDIS_URL = os.environ.get("REDIS_URL") or None
if REDIS_URL:
    _hosts = [{"address": REDIS_URL, "socket_timeout": 30}]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": _hosts, "capacity": 5000},
        },
        "streams": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": _hosts},
        },
    }
    RELAYBRIDGE_STREAM_LAYER = "streams"
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- relaybridge, with django-contrib-comments -------------------------------------------
RELAYBRIDGE_COMMENT_MODEL = "django_comments.Comment"
RELAYBRIDGE_ADAPTER = "relaybridge.contrib.django_comments.DjangoCommentsAdapter"
# Comments on cards call agents; comments on boards (or anything else) never do.
RELAYBRIDGE_DJANGO_COMMENTS_MODELS = ["cards.card"]
RELAYBRIDGE_REDIS_URL = REDIS_URL
RELAYBRIDGE_AGENTS = ["athena", "klyve", "offline", "broken", "sleepy", "stall", "slow"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "relaybridge": {"handlers": ["console"], "level": os.environ.get("RELAYBRIDGE_LOG", "INFO")}
    },
}
