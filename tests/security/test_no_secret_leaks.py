"""No Relay secret leaks anywhere a real deployment writes or shows things.

The whole production shape runs in processes (the Relay emulator, Celery, the
relay worker, Daphne with ``DEBUG`` off) with an app token made up for this
test. A person signs in, pastes agent tokens into comments that mention agents
(one of which echoes what it is sent), makes an agent fail, and browses every
page. Afterwards the database dump, the Redis contents, every process log, the
output of the management commands and every page served — including the 400,
403, 404 and 500 error pages — are scanned: neither the app token nor anything
shaped like an agent token may appear.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.deployment.harness import Deployment
from tests.deployment.waiting import wait_until

from .browsing import WebSession
from .secrets import Finding, SecretScanner, report

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def pg_dump(deployment: Deployment) -> bytes:
    done = subprocess.run(
        ["pg_dump", "--no-owner", deployment.database_url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def execute(deployment: Deployment, sql: str) -> None:
    with psycopg.connect(deployment.database_url, autocommit=True) as connection:
        connection.execute(sql)


def redis_contents(deployment: Deployment) -> bytes:
    """Every key and value in the deployment's Redis database, as raw bytes."""
    # Any: redis-py types replies as bytes | str; without decode_responses all are bytes.
    client: Any = redis.Redis.from_url(deployment.redis_server.url)
    parts: list[bytes] = []
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            if kind == b"string":
                parts += [key, client.get(key) or b""]
            elif kind == b"list":
                parts += [key, *client.lrange(key, 0, -1)]
            elif kind == b"hash":
                parts += [key, *(k + b" " + v for k, v in client.hgetall(key).items())]
            elif kind == b"zset":
                parts += [key, *client.zrange(key, 0, -1)]
            elif kind == b"set":
                parts += [key, *client.smembers(key)]
            else:
                parts.append(key)
    finally:
        client.close()
    return b"\n".join(parts)


def test_no_token_is_stored_logged_rendered_or_echoed(deployment: Deployment) -> None:
    app_token = f"rlk_test_{secrets.token_hex(16)}"
    pasted = [f"rla_athena_{secrets.token_hex(12)}", f"rla_klyve-{secrets.token_hex(12)}"]
    scanner = SecretScanner(known=[app_token, *pasted], app_token_shapes=True)
    # The scanner finds what it is meant to find (else a clean scan proves nothing).
    sample = f"x {app_token} y https://r/?token={app_token} {pasted[0]}"
    assert {f.kind for f in scanner.scan(sample, "sample")} == {
        "known secret (as is)",
        "agent-token-shaped",
        "app-token-shaped",
    }

    deployment.settings.update(RELAY_APP_TOKEN=app_token, RELAYBRIDGE_LOG="DEBUG")
    deployment.start_emulator(args=["--app-token", f"{app_token}=test"])
    deployment.start_celery()
    deployment.start_relay_worker()
    base = deployment.start_daphne(env={"DJANGO_DEBUG": "0"})
    assert deployment.manage("seed_demo").returncode == 0
    task_ids = [row[0] for row in deployment.query("SELECT id FROM tasks_task ORDER BY id")][:3]
    assert len(task_ids) == 3

    web = WebSession(base)
    web.sign_in("demo", "demo")
    bodies = {
        task_ids[0]: f"@athena please summarize. I pasted my agent token by mistake: {pasted[0]}",
        task_ids[1]: f"@klyve repeat after me: {pasted[1]} and the app token {app_token}",
        task_ids[2]: "@broken try this, please",
    }
    for task_id, body in bodies.items():
        assert web.post_comment(task_id, body).status == 200

    def runs_settled() -> bool:
        runs = {run.agent_id: run.status for run in deployment.runs()}
        return runs == {"athena": "replied", "klyve": "replied", "broken": "failed"}

    wait_until(runs_settled, 60, "athena and klyve to reply and broken to fail", interval=0.2)
    [klyve_reply] = deployment.agent_comments(task_ids[1])
    # The echo agent answered what it was sent: the message, with the tokens blanked.
    assert klyve_reply.body.startswith("@klyve repeat after me: [redacted]"), klyve_reply.body

    # Every page a signed-in staff user can reach, and the error pages.
    pages = web.crawl(["/", *(f"/tasks/{t}/" for t in task_ids), "/admin/"])
    assert len(pages) >= 10, [p.url for p in pages]
    assert all(p.status == 200 for p in pages), [
        (p.url, p.status) for p in pages if p.status != 200
    ]
    not_found = web.request("/no/such/page/")
    forged = web.request(
        f"/relaybridge/runs/{deployment.runs()[0].run_id}/retry/", {"nothing": "here"}
    )
    bad_host = web.request("/", headers={"Host": "evil.example"})
    assert (not_found.status, forged.status, bad_host.status) == (404, 403, 400)
    dump = pg_dump(deployment)
    # A server error on a real page: its table gone from under the running site.
    execute(deployment, "ALTER TABLE relaybridge_agentrun RENAME TO relaybridge_agentrun_gone")
    try:
        server_error = web.request(f"/tasks/{task_ids[0]}/")
    finally:
        execute(deployment, "ALTER TABLE relaybridge_agentrun_gone RENAME TO relaybridge_agentrun")
    assert server_error.status == 500
    assert "Traceback" not in server_error.body  # DEBUG is really off

    # An agent token pasted where the app token belongs: refused, never repeated.
    deployment.settings["RELAY_APP_TOKEN"] = pasted[0]
    check = deployment.manage("check")
    deployment.settings["RELAY_APP_TOKEN"] = app_token
    assert check.returncode != 0 and "relaybridge.E007" in check.output
    status = deployment.relay_status()

    findings: list[Finding] = []
    findings += scanner.scan_bytes(dump, "pg_dump")
    findings += scanner.scan_bytes(redis_contents(deployment), "redis")
    findings += scanner.scan_files(sorted(Path(deployment.workdir).glob("*.log")))
    findings += scanner.scan(check.output, "manage.py check")
    findings += scanner.scan(status.output, "manage.py relay_status")
    for page in web.pages:
        findings += scanner.scan(page.body, f"{page.status} {page.url}")
    assert not findings, report(findings)
    # The scan saw real content: the dump holds the comments, the logs the runs.
    assert b"please summarize" in dump
    assert any("athena" in p.body for p in web.pages if p.url.endswith(f"/tasks/{task_ids[0]}/"))
