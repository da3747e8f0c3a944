"""The pages that measure: browser-like subscribers, and how their tokens are counted.

A :class:`Subscriber` is what a task page's script is to the server: it signs in
through the sign-in form (session cookie, CSRF token), opens ``/ws/tasks/<id>/``
with the cookie and an ``Origin`` header, and records every message with the
wall-clock time it arrived. Parsing waits until the measurement is over, so the
receive loop does no more than a page's would.

The baseline clients, which talk to the emulator directly, are in :mod:`.direct`.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relaybridge.emulator.load import parse_stamps

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Login:
    base_url: str
    cookie: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie, "Origin": self.base_url}

    def stream_url(self, task_id: int) -> str:
        return self.base_url.replace("http://", "ws://", 1) + f"/ws/tasks/{task_id}/"


def sign_in(base_url: str, username: str, password: str) -> Login:
    """Sign in through the form like a browser; the cookies it ends up with."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_url = f"{base_url}/accounts/login/"
    with opener.open(login_url, timeout=10) as response:
        found = _CSRF_INPUT.search(response.read().decode())
    if found is None:
        raise RuntimeError("the sign-in page has no CSRF token")
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": found.group(1)}
    ).encode()
    request = urllib.request.Request(
        login_url, data=form, headers={"Origin": base_url, "Referer": login_url}
    )
    with opener.open(request, timeout=10):
        pass
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies:
        raise RuntimeError("signing in gave no session cookie (wrong demo password?)")
    return Login(base_url, "; ".join(f"{k}={v}" for k, v in cookies.items() if v is not None))


@dataclass
class Subscriber:
    """One open page of one task, recording ``(arrival ns, raw message)``."""

    login: Login
    task_id: int
    expected_runs: int = 1
    #: Tells apart several pages open on one task.
    name: str = ""
    received: list[tuple[int, str]] = field(default_factory=list)
    snapshot_seen: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    _conn: ClientConnection | None = None

    async def open(self) -> None:
        self._conn = await connect(
            self.login.stream_url(self.task_id),
            additional_headers=self.login.headers,
            max_size=None,
            ping_interval=None,
            proxy=None,
        )

    async def listen(self) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("open() first")
        ended = 0
        try:
            async for message in conn:
                now = time.time_ns()
                text = message if isinstance(message, str) else message.decode()
                self.received.append((now, text))
                # Cheap checks only: the full parse happens after the measurement.
                if '"type": "snapshot"' in text or '"type":"snapshot"' in text:
                    self.snapshot_seen.set()
                elif '"run.reply"' in text or '"run.error"' in text:
                    ended += 1
                    if ended >= self.expected_runs:
                        self.finished.set()
        except ConnectionClosed:
            pass
        finally:
            self.finished.set()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def messages(self) -> list[tuple[int, dict[str, Any]]]:
        return [(at, json.loads(text)) for at, text in self.received]

    def byte_count(self, kinds: frozenset[str] | None = None) -> int:
        total = 0
        for _at, text in self.received:
            if kinds is None or json.loads(text).get("type") in kinds:
                total += len(text.encode())
        return total


@dataclass
class TokenLog:
    """Per-token delays (ms) and counts from stamped text, across runs."""

    delays_ms: list[float] = field(default_factory=list)
    #: The position of each token in ``delays_ms`` within its answer.
    indexes: list[int] = field(default_factory=list)
    seen: dict[str, set[int]] = field(default_factory=dict)
    duplicates: int = 0
    first_sent_ns: int | None = None
    last_sent_ns: int | None = None

    def add(self, run: str, text: str, arrived_ns: int, *, whole_text: bool = False) -> None:
        """Record the tokens in ``text``; a delta's repeats count as duplicates, while
        ``whole_text`` (a status or snapshot: the text so far) may repeat them."""
        indexes = self.seen.setdefault(run, set())
        for index, sent_ns in parse_stamps(text):
            if index in indexes:
                self.duplicates += 0 if whole_text else 1
                continue
            indexes.add(index)
            self.delays_ms.append((arrived_ns - sent_ns) / 1e6)
            self.indexes.append(index)
            if self.first_sent_ns is None or sent_ns < self.first_sent_ns:
                self.first_sent_ns = sent_ns
            if self.last_sent_ns is None or sent_ns > self.last_sent_ns:
                self.last_sent_ns = sent_ns

    @property
    def tokens(self) -> int:
        return sum(len(indexes) for indexes in self.seen.values())

    def sent_rate(self) -> float:
        """Tokens per second as the emulator sent them (from the stamps)."""
        if self.first_sent_ns is None or self.last_sent_ns is None:
            return 0.0
        span = (self.last_sent_ns - self.first_sent_ns) / 1e9
        return self.tokens / span if span > 0 else 0.0


def subscriber_tokens(subscriber: Subscriber, log: TokenLog | None = None) -> TokenLog:
    """The tokens one page received: in deltas, and in the text so far of a status or
    snapshot (a page shows that text too; a token counts when it first arrived)."""
    log = log or TokenLog()
    prefix = f"{subscriber.task_id}:{subscriber.name}"
    for arrived, message in subscriber.messages():
        kind = message.get("type")
        if kind == "run.delta":
            log.add(f"{prefix}:{message['run']}", message["text"], arrived)
        elif kind == "run.status" and message.get("text"):
            log.add(f"{prefix}:{message['run']}", message["text"], arrived, whole_text=True)
        elif kind == "snapshot":
            for state in message.get("runs", []):
                text = state.get("text") or ""
                log.add(f"{prefix}:{state['run']}", text, arrived, whole_text=True)
    return log
