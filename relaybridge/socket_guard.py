"""What keeps the pages' stream sockets in bounds: from where, how many, and for how long.

* :func:`origin_allowed` -- a socket's ``Origin`` must be exactly the page's own origin
  (scheme, host and port of the request's ``Host``) or one listed in
  ``RELAYBRIDGE_ALLOWED_ORIGINS``; a host name alone is not enough.
* :class:`SocketSlot` -- at most ``RELAYBRIDGE_MAX_SOCKETS_PER_USER`` open sockets per
  person, counted in the Django cache (``RELAYBRIDGE_CACHE_ALIAS``), so every Daphne
  process that shares the cache counts the same sockets. A socket holds one of the
  person's numbered slots as a cache entry with an expiry, renewed while it is open: a
  process that dies without closing its sockets frees their slots when they expire.
* :func:`user_group_name` and the receivers :func:`connect_receivers` connects -- a
  sign-out closes that session's sockets, and deactivating or deleting an account closes
  all of its sockets at once, through a channel-layer group per person.
* :func:`current_user` -- what the consumer asks again every
  ``RELAYBRIDGE_SOCKET_RECHECK_INTERVAL`` seconds: the session still exists, its user is
  still active, and may still view the thread. It catches what no signal tells (a
  ``QuerySet.update``, an expired session, a changed password, a lost permission).
"""

from __future__ import annotations

import hashlib
import logging
from importlib import import_module
from typing import Any, Final
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model, user_logged_out
from django.core.cache import caches
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

from .conf import relay_settings

logger = logging.getLogger("relaybridge")

#: The group every stream socket of one person joins; see :func:`user_group_name`.
USER_GROUP_PREFIX: Final = "relaybridge.user."
#: The group message that closes a person's sockets (``relaybridge_socket_close``).
CLOSE_MESSAGE_TYPE: Final = "relaybridge.socket.close"
_SLOT_KEY_PREFIX: Final = "relaybridge:sockets:"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _digest(value: object) -> str:
    return hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:32]


# --- the origin -------------------------------------------------------------------------


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialized origin, or None if it is not one."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def _is_secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    # The same proxy header Django's request.is_secure() trusts, if the host set one.
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, expected = proxy_header
        header = str(name).removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        value = _header(scope, header)
        return value is not None and value.split(",")[0].strip() == expected
    return False


def _own_origin(scope: dict[str, Any]) -> tuple[str, str, int] | None:
    """The page's origin: the request's scheme and ``Host``, if ``ALLOWED_HOSTS`` allows it."""
    host = _header(scope, b"host")
    if getattr(settings, "USE_X_FORWARDED_HOST", False):
        # As Django's request.get_host(): the proxy's X-Forwarded-Host, if it sent one.
        forwarded = _header(scope, b"x-forwarded-host")
        host = forwarded.split(",")[-1].strip() if forwarded else host
    if not host:
        return None
    domain, _port = split_domain_port(host)
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # as Django's request.get_host()
    if not domain or not validate_host(domain, allowed):
        return None
    scheme = "https" if _is_secure(scope) else "http"
    return parse_origin(f"{scheme}://{host}")


def origin_allowed(scope: dict[str, Any]) -> bool:
    """True when the socket's ``Origin`` is exactly the page's own or an allowed one.

    Scheme, host and port must all match (a missing port is the scheme's default), as
    for Django's ``CSRF_TRUSTED_ORIGINS`` without wildcards. A socket without an
    ``Origin`` (no browser sends one without it), with ``null`` or with anything that
    is not a bare origin is refused.
    """
    origin = _header(scope, b"origin")
    if not origin:
        return False
    wanted = parse_origin(origin.strip())
    if wanted is None:
        return False
    if wanted == _own_origin(scope):
        return True
    return any(parse_origin(allowed) == wanted for allowed in relay_settings.ALLOWED_ORIGINS)


# --- the cap ----------------------------------------------------------------------------


def slot_lease() -> float:
    """Seconds a socket's slot is held without renewal: two re-checks and a margin."""
    return 2 * relay_settings.SOCKET_RECHECK_INTERVAL + 30


class SocketSlot:
    """One of a person's ``RELAYBRIDGE_MAX_SOCKETS_PER_USER`` numbered slots, or none.

    Slot ``i`` is the cache entry ``relaybridge:sockets:<user digest>:<i>``; ``add``
    takes it only if it is free, atomically on every cache Django ships (``SET NX``
    on Redis). The owner is the socket's channel name, so a release never frees a slot
    that another socket took after this one's expired.
    """

    def __init__(self, user_pk: object, owner: str) -> None:
        self.prefix = f"{_SLOT_KEY_PREFIX}{_digest(user_pk)}:"
        self.owner = owner
        self.key: str | None = None

    @property
    def _cache(self) -> Any:
        return caches[relay_settings.CACHE_ALIAS]

    async def claim(self) -> bool:
        """Take a free slot; False when all are taken (the person is at the cap)."""
        cap = relay_settings.MAX_SOCKETS_PER_USER
        if cap is None:
            return True
        for index in range(cap):
            key = f"{self.prefix}{index}"
            if await self._cache.aadd(key, self.owner, timeout=slot_lease()):
                self.key = key
                return True
        return False

    async def renew(self) -> None:
        if self.key is not None and not await self._cache.atouch(self.key, slot_lease()):
            # Expired meanwhile (the cache was cleared or restarted): take it back if free.
            await self._cache.aadd(self.key, self.owner, timeout=slot_lease())

    async def release(self) -> None:
        key, self.key = self.key, None
        if key is not None and await self._cache.aget(key) == self.owner:
            await self._cache.adelete(key)


# --- closing a person's sockets ---------------------------------------------------------


def user_group_name(user_pk: object) -> str:
    """The channel-layer group every stream socket of the person ``user_pk`` joins."""
    return f"{USER_GROUP_PREFIX}{_digest(user_pk)}"


def close_sockets(user_pk: object, code: int, session_key: str | None = None) -> None:
    """Close the person's stream sockets with ``code`` (only ``session_key``'s, if given).

    Best effort from synchronous code: the periodic re-check closes whatever a lost
    message leaves open.
    """
    from .streams import stream_layer

    message = {"type": CLOSE_MESSAGE_TYPE, "code": code, "session": session_key or ""}
    try:
        layer = stream_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(user_group_name(user_pk), message)
    except Exception:
        # Signing out or saving a person must not fail for it (a layer down, misnamed).
        logger.exception("could not tell the stream sockets of a person to close")


def _logged_out(
    sender: Any, request: HttpRequest | None = None, user: Any = None, **_: Any
) -> None:
    from .consumers import CLOSE_SESSION_ENDED

    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    if user is not None and getattr(user, "pk", None) is not None and session_key:
        close_sockets(user.pk, CLOSE_SESSION_ENDED, session_key)


def _user_saved(sender: Any, instance: Any, raw: bool = False, **_: Any) -> None:
    from .consumers import CLOSE_SESSION_ENDED

    if not raw and getattr(instance, "is_active", True) is False:
        close_sockets(instance.pk, CLOSE_SESSION_ENDED)


def _user_deleted(sender: Any, instance: Any, **_: Any) -> None:
    from .consumers import CLOSE_SESSION_ENDED

    close_sockets(instance.pk, CLOSE_SESSION_ENDED)


def connect_receivers() -> None:
    user_model = get_user_model()
    user_logged_out.connect(_logged_out, dispatch_uid="relaybridge.socket_guard.logged_out")
    post_save.connect(
        _user_saved, sender=user_model, dispatch_uid="relaybridge.socket_guard.user_saved"
    )
    post_delete.connect(
        _user_deleted, sender=user_model, dispatch_uid="relaybridge.socket_guard.user_deleted"
    )


# --- the periodic re-check --------------------------------------------------------------


def current_user(session_key: str | None, user_pk: Any) -> Any | None:
    """The person the session still signs in, if it is ``user_pk`` and active, else None.

    The session is read afresh from its store, and Django's ``get_user`` checks it as a
    request would: the session exists, its password hash still matches, and the
    authentication backend still lets the person in. Without a session (a host that
    authenticates sockets another way) the person is read again from the database.
    """
    user: Any
    if session_key:
        from django.contrib.auth import get_user

        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(request)
    else:
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
    if user is None or not getattr(user, "is_authenticated", False) or user.pk != user_pk:
        return None
    if getattr(user, "is_active", True) is False:
        return None
    return user
