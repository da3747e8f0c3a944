"""PostgreSQL databases and Redis database indexes, one of each per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from .hosts import EXAMPLE, Host
from .processes import ROOT, base_env
from .waiting import wait_until

#: A superuser connection to the maintenance database (trust auth, as in CI).
POSTGRES_ADMIN_URL = os.environ.get(
    "RELAYBRIDGE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
#: Redis database indexes these tests may take, one per running test.
REDIS_DB_SLOTS = range(5, 10)
#: The key that marks a Redis database index as taken by a test.
SLOT_CLAIM_KEY = "relaybridge-tests:slot-owner"
SLOT_CLAIM_TTL_S = 600


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


# -- Redis -------------------------------------------------------------------------------

# FLUSHDB and re-claim in one step, so no other test session can take the slot in between.
_FLUSH_KEEPING_CLAIM = """
local owner = redis.call('GET', KEYS[1])
redis.call('FLUSHDB')
if owner then redis.call('SET', KEYS[1], owner, 'EX', ARGV[1]) end
return owner
"""


class RedisSlot:
    """One Redis database index, claimed for one test and flushed around it.

    Several test sessions may share one Redis server; the claim key (with a TTL, in
    case a session dies) keeps two of them off the same index.
    """

    def __init__(self, base_url: str, *, slots: Iterable[int] = REDIS_DB_SLOTS) -> None:
        self.base_url = base_url
        self.slots = tuple(slots)
        self.owner = uuid.uuid4().hex
        self.db: int | None = None
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        if self.db is None:
            raise RuntimeError("no Redis database index is claimed")
        return self._url_for(self.db)

    def _url_for(self, db: int) -> str:
        # The index goes into the URL: redis-py lets a URL's path override a db= argument.
        parts = urlsplit(self.base_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("no Redis database index is claimed")
        return self._client

    def claim(self, timeout: float = 60.0) -> RedisSlot:
        def try_slots() -> bool:
            for db in self.slots:
                client = redis.Redis.from_url(self._url_for(db), decode_responses=True)
                # FLUSHDB follows: never let it reach an index other than the claimed one.
                if client.connection_pool.connection_kwargs.get("db") != db:
                    raise RuntimeError(f"{self.base_url} did not select database {db}")
                if client.set(SLOT_CLAIM_KEY, self.owner, nx=True, ex=SLOT_CLAIM_TTL_S):
                    self.db, self._client = db, client
                    return True
                client.close()
            return False

        wait_until(try_slots, timeout, f"a free Redis database index among {self.slots}")
        self.flush()
        return self

    def flush(self) -> None:
        self.client.eval(_FLUSH_KEEPING_CLAIM, 1, SLOT_CLAIM_KEY, SLOT_CLAIM_TTL_S)

    def release(self) -> None:
        if self._client is None:
            return
        if self._client.get(SLOT_CLAIM_KEY) == self.owner:
            self._client.flushdb()
        self._client.close()
        self._client, self.db = None, None
