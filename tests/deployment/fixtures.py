"""Fixtures for the multi-process tests, loaded as a plugin by the root conftest: a
migrated template database, a ``redis-server`` of the test's own, and a
:class:`Deployment` that kills every process it started when the test ends.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_redis_server, require_service
from tests.redis_server import RedisServer

from .harness import Deployment
from .hosts import EXAMPLE, Host
from .services import (
    POSTGRES_ADMIN_URL,
    create_database,
    drop_database,
    migrate,
    postgres_available,
    unique_database_name,
)

_DEPLOYMENT = pytest.StashKey[Deployment]()


@pytest.fixture(scope="session")
def template_databases() -> Iterator[dict[Host, str]]:
    """One database per host, migrated once per session when first asked for.

    Each test gets a copy: cloning a template takes a fraction of a second where
    ``migrate`` takes several.
    """
    require_service("PostgreSQL", postgres_available(), f"cannot connect to {POSTGRES_ADMIN_URL}")
    templates: dict[Host, str] = {}
    try:
        yield templates
    finally:
        for name in templates.values():
            drop_database(name)


@pytest.fixture
def deployment_host() -> Host:
    """The host project a test's deployment runs; a test module overrides it for another."""
    return EXAMPLE


@pytest.fixture
def migrated_template(deployment_host: Host, template_databases: dict[Host, str]) -> str:
    """The migrated template database of the test's host."""
    if deployment_host not in template_databases:
        name = unique_database_name(f"template_{deployment_host.name}")
        create_database(name)
        template_databases[deployment_host] = name
        migrate(name, deployment_host)
    return template_databases[deployment_host]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of this test's own, on a free port: nothing another test (or
    anybody else on the machine) does reaches it, and it may be restarted at will."""
    require_redis_server()
    with RedisServer(tmp_path / "redis.log") as server:
        yield server


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    deployment_host: Host,
    migrated_template: str,
    private_redis: RedisServer,
    tmp_path: Path,
) -> Iterator[Deployment]:
    name = unique_database_name("test")
    create_database(name, template=migrated_template)
    try:
        with Deployment(
            database=name, redis_server=private_redis, workdir=tmp_path, host=deployment_host
        ) as deployed:
            request.node.stash[_DEPLOYMENT] = deployed
            yield deployed
    finally:
        drop_database(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach run states and process logs to the report of a failed test."""
    report = yield
    deployed = item.stash.get(_DEPLOYMENT, None)
    if deployed is not None and report.failed and call.when in ("setup", "call"):
        report.sections.append(("deployment", deployed.report()))
    return report
