"""PostgreSQL databases, one per test (each test's Redis is a server of its own:
:mod:`tests.redis_server`)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from .hosts import EXAMPLE, Host
from .processes import ROOT, base_env

#: A superuser connection to the maintenance database (trust auth, as in CI).
POSTGRES_ADMIN_URL = os.environ.get(
    "RELAYBRIDGE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str, admin_url: str = POSTGRES_ADMIN_URL) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def postgres_available(admin_url: str = POSTGRES_ADMIN_URL) -> bool:
    try:
        with psycopg.connect(admin_url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def create_database(name: str, *, template: str | None = None) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(statement)


def drop_database(name: str) -> None:
    # FORCE: a process killed with SIGKILL may leave a server backend behind for a moment.
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def unique_database_name(kind: str) -> str:
    return f"relaybridge_proc_{kind}_{uuid.uuid4().hex[:12]}"


def migrate(database: str, host: Host = EXAMPLE) -> None:
    """Apply ``host``'s migrations to ``database`` with ``manage.py migrate``."""
    env = base_env(
        database_url=database_url(database), redis_url=None, settings_module=host.settings_module
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
