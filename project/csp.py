"""The example project's Content-Security-Policy, sent with every response.

Django 5.2 has no CSP middleware of its own (``django.middleware.csp`` arrives in
6.0), so this small one sends the header. The policy allows scripts, styles and
images from the site alone -- no inline ``<script>``/``<style>``, no ``style=``
attributes, no ``eval`` -- which relaybridge's templates and page scripts keep to:
their data travels in ``data-`` attributes and ``json_script`` blocks. The page's
WebSocket may only go back to the host that served the page (``ws:`` or ``wss:``
after the page's own scheme), which browsers that predate CSP level 3 would not
read into ``'self'``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

HEADER = "Content-Security-Policy"

#: ``connect-src`` is added per request (the page's own host).
POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
)


def policy_for(request: HttpRequest) -> str:
    """The policy for a response to ``request``."""
    try:
        host = request.get_host()
    except DisallowedHost:  # answered with a 400 already; 'self' alone will do
        return "; ".join((*POLICY, "connect-src 'self'"))
    scheme = "wss" if request.is_secure() else "ws"
    return "; ".join((*POLICY, f"connect-src 'self' {scheme}://{host}"))


def _add_policy(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if HEADER not in response:
        response[HEADER] = policy_for(request)
    return response


@sync_and_async_middleware
def content_security_policy(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Adds the site's policy to every response that has none of its own."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            respond: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = get_response
            return _add_policy(request, await respond(request))

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        return _add_policy(request, get_response(request))

    return middleware
