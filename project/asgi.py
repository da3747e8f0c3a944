"""ASGI entry point: ``daphne project.asgi:application``.

HTTP goes to Django; WebSockets go through the origin check and the session/auth
middleware to relaybridge's consumers.
"""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# Every open page's socket keeps its objects alive here, and the collector's full
# passes walk all of them: with 500 pages open, 70-90 ms each, every few seconds
# while an answer streams. Young collections every 20,000 new objects (not 700)
# leave each push's short-lived objects to reference counting, so few of them
# survive into the old generation and full passes become rare. README, Deploying.
gc.set_threshold(20_000)

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from relaybridge.routing import unknown_path_urlpatterns, websocket_urlpatterns  # noqa: E402

# With DEBUG on, Daphne serves the static files itself, as runserver does; in
# production they are collected (collectstatic) and served in front of Daphne.
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, *unknown_path_urlpatterns]))
        ),
    }
)
