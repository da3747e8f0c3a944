"""Run the small host project (tests/host_project) the way a developer would.

Standard library only: ``make wheel-check`` runs it with the Python of a new virtual
environment that has only the wheel installed, and tests/packaging runs it with the
development environment's. Steps, each a real process in the project's folder:

1. ``manage.py check`` passes; ``migrate`` creates the tables.
2. The ticket page renders relaybridge's tags (``{% load relaybridge %}``), and the
   static files are found, inside the installed package.
3. ``manage.py runserver`` (Daphne's, DEBUG on) serves ``relaybridge/stream.js``.
4. ``manage.py relay_devserver`` serves the page, and a message mentioning @athena
   posted through it gets Athena's reply from the local Relay emulator; Ctrl-C stops it.

``python host_exercise.py --python PATH --project DIR`` exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

START_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 15.0

RENDER_SCRIPT = """
import json, pathlib
import relaybridge
from django.contrib.staticfiles import finders
from django.test import Client
from helpdesk.models import Ticket
ticket = Ticket.objects.create(title="Printer on fire")
page = Client().get(f"/tickets/{ticket.pk}/", HTTP_HOST="127.0.0.1")
package = pathlib.Path(relaybridge.__file__).parent
print(json.dumps({
    "status": page.status_code,
    "html": page.content.decode(),
    "ticket": ticket.pk,
    "package": str(package),
    "version": relaybridge.__version__,
    "static": {name: finders.find(f"relaybridge/{name}") for name in ("stream.js", "mentions.js")},
    "typed": (package / "py.typed").is_file(),
}))
"""


class ExerciseFailed(AssertionError):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise ExerciseFailed(message)


class HostProject:
    def __init__(self, python: str, project: Path) -> None:
        self.python = python
        self.project = project
        self.database = project / "exercise.sqlite3"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RELAYBRIDGE_", "RELAY_", "DJANGO_", "PYTHON"))
            and key not in {"DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"}
        }
        self.env.update(HOST_DATABASE=str(self.database), PYTHONUNBUFFERED="1")

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.python, "manage.py", *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        check(
            done.returncode == 0,
            f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}",
        )
        return done

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.python, "manage.py", *args],
            cwd=self.project,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def query(self, sql: str) -> list[tuple[object, ...]]:
        db = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def collect_output(process: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert process.stdout is not None
        # The reader closes the pipe at its end (the process's exit): nothing is left
        # for the garbage collector to close with a ResourceWarning.
        with process.stdout as output:
            for line in output:
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def stop(process: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a person would; the exit code, or a failure when it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        raise ExerciseFailed(f"did not stop {EXIT_TIMEOUT_S}s after Ctrl-C") from None


def fetch(
    opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers={"Referer": url})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for_http(url: str, process: subprocess.Popen[str], output: list[str]) -> bytes:
    deadline = time.monotonic() + START_TIMEOUT_S
    opener = urllib.request.build_opener()
    while time.monotonic() < deadline:
        check(process.poll() is None, "the server exited:\n" + "".join(output))
        try:
            status, body = fetch(opener, url)
        except OSError:
            time.sleep(0.2)
            continue
        check(status == 200, f"GET {url} answered {status}:\n" + "".join(output))
        return body
    raise ExerciseFailed(f"{url} did not answer in {START_TIMEOUT_S}s:\n" + "".join(output))


def check_and_migrate(host: HostProject) -> None:
    host.manage("check", "--fail-level", "ERROR")
    host.manage("migrate", "--noinput")
    print("ok: manage.py check and migrate")


def render_templates(host: HostProject) -> dict[str, object]:
    done = host.manage("shell", "--no-imports", "-c", RENDER_SCRIPT)
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    html = str(found["html"])
    check(found["status"] == 200, f"the ticket page answered {found['status']}")
    for fragment in (
        '<script src="/static/relaybridge/stream.js" defer></script>',
        "/static/relaybridge/mentions.js",
        'id="relaybridge-mention-hint"',
        'data-relaybridge-thread="helpdesk.ticket.',
    ):
        check(fragment in html, f"the ticket page lacks {fragment!r}:\n{html}")
    package = str(found["package"])
    static = found["static"]
    assert isinstance(static, dict)
    for name, path in static.items():
        check(path and str(path).startswith(package), f"{name} not found in {package}: {path}")
    check(found["typed"], f"no py.typed in {package}")
    print(f"ok: templates render and static files are found in {package}")
    return found


def runserver_serves_static(host: HostProject, found: dict[str, object]) -> None:
    port = free_port()
    output: list[str] = []
    process = host.start("runserver", f"127.0.0.1:{port}", "--noreload")
    collect_output(process, output)
    try:
        served = wait_for_http(
            f"http://127.0.0.1:{port}/static/relaybridge/stream.js", process, output
        )
        static = found["static"]
        assert isinstance(static, dict)
        check(served == Path(static["stream.js"]).read_bytes(), "runserver served other bytes")
        check("Daphne" in "".join(output), "runserver is not Daphne's:\n" + "".join(output))
    finally:
        stop(process)
    print("ok: Daphne's runserver serves relaybridge/stream.js with DEBUG on")


def devserver_answers_a_mention(host: HostProject, ticket: object) -> None:
    output: list[str] = []
    process = host.start("relay_devserver", "--port", "0")
    collect_output(process, output)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = ""
        while not url and time.monotonic() < deadline:
            check(process.poll() is None, "relay_devserver exited:\n" + "".join(output))
            match = re.search(r"relaybridge dev server: (http://\S+/)", "".join(output))
            url = match.group(1) if match else ""
            time.sleep(0.1)
        check(url, "relay_devserver printed no address:\n" + "".join(output))
        cookies = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        page_url = f"{url}tickets/{ticket}/"
        status, page = fetch(opener, page_url)
        check(status == 200, f"GET {page_url} answered {status}")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        check(token, "no CSRF token on the ticket page")
        assert token is not None
        form = {"csrfmiddlewaretoken": token.group(1).decode(), "text": "@athena how bad is it?"}
        status, _ = fetch(opener, page_url, urllib.parse.urlencode(form).encode())
        check(status == 200, f"posting the message answered {status}")
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            replies = host.query("SELECT text FROM helpdesk_message WHERE agent_id = 'athena'")
            if replies:
                break
            time.sleep(0.2)
        else:
            raise ExerciseFailed(f"no reply from athena in {REPLY_TIMEOUT_S}s:\n" + "".join(output))
        check("Printer on fire" in str(replies[0][0]), f"an unexpected reply: {replies}")
    finally:
        code = stop(process)
    check(code == 0, f"relay_devserver exited {code} on Ctrl-C:\n" + "".join(output))
    print("ok: relay_devserver answers a mention of @athena and stops on Ctrl-C")


def exercise(python: str, project: Path) -> dict[str, object]:
    host = HostProject(python, project)
    check_and_migrate(host)
    found = render_templates(host)
    runserver_serves_static(host, found)
    devserver_answers_a_mention(host, found["ticket"])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the environment's Python")
    parser.add_argument("--project", type=Path, required=True, help="a copy of tests/host_project")
    args = parser.parse_args(argv)
    try:
        exercise(args.python, args.project)
    except ExerciseFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
