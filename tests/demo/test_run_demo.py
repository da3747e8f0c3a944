"""``manage.py run_demo`` as a real process: the embedded default, end to end.

Nothing but Python: a fresh SQLite file, the in-memory channel layer, eager
Celery and the in-process Relay emulator. A person's comment mentioning @athena,
posted through the running server, gets Athena's reply comment; Ctrl-C then
stops the whole process promptly.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"relaybridge demo: (http://127\.0\.0\.1:\d+/)")
START_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 8.0


@dataclass
class Demo:
    process: subprocess.Popen[str]
    db_path: Path
    url: str = ""
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output)

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


#: Left out of the demo's environment: the demo starts as a user starts it, with no
#: services, no Relay, and neither DEBUG nor a secret key from outside.
OUTSIDE = {
    "REDIS_URL",
    "RELAY_APP_TOKEN",
    "RELAY_URL",
    "DATABASE_URL",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
}


def _demo_env(db_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in OUTSIDE and not k.startswith("RELAYBRIDGE_")
    }
    env["DATABASE_URL"] = f"sqlite:///{db_path}"
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    return env


@contextlib.contextmanager
def running_demo(db_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Demo]:
    """Start ``run_demo`` on a free port (``env``: more environment for it); kill it on
    the way out if it still runs."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_demo", "--port", "0", *args],
        cwd=ROOT,
        env={**_demo_env(db_path), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Demo(process=process, db_path=db_path)
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.output.append(line)
            match = URL_LINE.search(line)
            if match and not found.is_set():
                running.url = match.group(1)
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not found.wait(START_TIMEOUT_S):
            pytest.fail(f"run_demo printed no URL in {START_TIMEOUT_S}s:\n{running.log()}")
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)
        assert process.stdout is not None
        process.stdout.close()  # left open, the pipe leaks (a ResourceWarning)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path / "demo.sqlite3") as running:
        yield running


class Browser:
    """Just enough of a browser for Django's admin: cookies and CSRF tokens."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base_url + path.lstrip("/"), timeout=10) as response:
            return response.status, response.read().decode()

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        """GET the form for its CSRF token, POST it; return status, final URL and body."""
        _, page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, f"no CSRF token on {path}"
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        request = urllib.request.Request(
            self.base_url + path.lstrip("/"), data=data, headers={"Referer": self.base_url}
        )
        with self.opener.open(request, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()


def _sigint_and_wait(demo: Demo) -> int:
    demo.process.send_signal(signal.SIGINT)
    try:
        return demo.process.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run_demo did not exit {EXIT_TIMEOUT_S}s after SIGINT:\n{demo.log()}")


def test_the_demo_answers_a_mention_and_stops_on_ctrl_c(demo: Demo) -> None:
    browser = Browser(demo.url)
    status, _ = browser.get("/admin/login/")
    assert status == 200

    status, landed, _ = browser.post_form(
        "/admin/login/?next=/admin/", {"username": "demo", "password": "demo", "next": "/admin/"}
    )
    assert status == 200 and urllib.parse.urlparse(landed).path == "/admin/", "login failed"

    [(user_id,)] = demo.query("SELECT id FROM auth_user WHERE username = 'demo'")
    task_id, title = demo.query("SELECT id, title FROM tasks_task ORDER BY id LIMIT 1")[0]
    posted = time.monotonic()
    status, landed, _ = browser.post_form(
        "/admin/tasks/comment/add/",
        {
            "task": str(task_id),
            "author": str(user_id),
            "agent_id": "",
            "body": f"@athena what is the one risk in {title}?",
        },
    )
    # Saving does not wait for the agent: the admin answers with its change list.
    assert status == 200 and urllib.parse.urlparse(landed).path == "/admin/tasks/comment/"
    assert time.monotonic() - posted < 5.0

    deadline = time.monotonic() + REPLY_TIMEOUT_S
    replies: list[tuple[object, ...]] = []
    while time.monotonic() < deadline and not replies:
        replies = demo.query(
            "SELECT body FROM tasks_comment WHERE task_id = ? AND agent_id = 'athena'", task_id
        )
        time.sleep(0.2)
    assert replies, f"no reply from athena within {REPLY_TIMEOUT_S}s:\n{demo.log()}"
    assert str(replies[0][0]).strip()
    [(status_of_run,)] = demo.query(
        "SELECT status FROM relaybridge_agentrun WHERE agent_id = 'athena'"
    )
    assert status_of_run == "replied"

    assert _sigint_and_wait(demo) == 0, demo.log()
    assert "relaybridge demo stopped" in demo.log()


def test_without_seeding_there_is_no_demo_login_and_sigterm_stops_it(tmp_path: Path) -> None:
    with running_demo(tmp_path / "bare.sqlite3", "--no-seed") as demo:
        assert "log in as demo" not in demo.log()
        assert demo.query("SELECT COUNT(*) FROM auth_user") == [(0,)]
        demo.process.send_signal(signal.SIGTERM)
        assert demo.process.wait(EXIT_TIMEOUT_S) == 0, demo.log()
