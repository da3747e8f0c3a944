"""relaybridge in a project that is not the example: tests/host_project, run from a copy.

The full walk (check, templates, Daphne's runserver, relay_devserver answering a
mention) is :mod:`tests.packaging.host_exercise`, which ``make wheel-check`` also runs
against the built wheel; here it runs against the checkout. The other tests are the
failure paths a host meets first, each with the remedy in the message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.host_exercise import exercise

ROOT = Path(__file__).resolve().parents[2]
HOST_PROJECT = ROOT / "tests" / "host_project"


@pytest.fixture
def host_project(tmp_path: Path) -> Path:
    copy = tmp_path / "host_project"
    shutil.copytree(HOST_PROJECT, copy, ignore=shutil.ignore_patterns("*.sqlite3", "__pycache__"))
    return copy


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RELAYBRIDGE_", "RELAY_", "DJANGO_"))
        and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    clean.update(HOST_DATABASE=str(cwd / "test.sqlite3"), **env)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_the_host_project_runs_with_relaybridge(host_project: Path) -> None:
    found = exercise(sys.executable, host_project)
    assert Path(str(found["package"])) == ROOT / "relaybridge"


def test_relay_devserver_asks_for_migrate_first(host_project: Path) -> None:
    done = run(["manage.py", "relay_devserver", "--port", "0"], host_project)
    assert done.returncode == 1
    assert "relaybridge's tables do not exist yet" in done.stderr
    assert "python manage.py migrate" in done.stderr


def test_relay_worker_refuses_the_in_memory_layer(host_project: Path) -> None:
    done = run(["manage.py", "relay_worker"], host_project)
    assert done.returncode == 1
    assert "relay_worker cannot run as a process of its own" in done.stderr
    assert "CHANNEL_LAYERS 'default'" in done.stderr
    assert "python manage.py relay_devserver" in done.stderr
    assert "channels_redis" in done.stderr


BLOCK = "import sys; sys.modules.update(daphne=None, dj_database_url=None, twisted=None); "


def test_without_daphne_the_one_process_server_names_the_extra(tmp_path: Path) -> None:
    code = (
        BLOCK + "from django.core.management import execute_from_command_line as run; "
        "run(['manage.py', 'relay_devserver', '--skip-checks'])"
    )
    done = run(
        ["-c", code],
        tmp_path,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="tests.packaging.minimal_settings",
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert 'pip install "relaybridge[daphne]"' in done.stderr


def test_relaybridge_imports_without_daphne_or_dj_database_url(tmp_path: Path) -> None:
    # Only the one-process server needs Daphne, and only the example project reads
    # DATABASE_URL: neither may be imported by merely using the package.
    code = BLOCK + (
        "import django, importlib, pkgutil, relaybridge; from django.conf import settings; "
        "settings.configure(INSTALLED_APPS=['django.contrib.admin', 'django.contrib.auth', "
        "'django.contrib.contenttypes', 'django.contrib.sessions', 'django.contrib.messages', "
        "'channels', 'relaybridge'], RELAYBRIDGE_COMMENT_MODEL='auth.User'); django.setup(); "
        "names = [m.name for m in pkgutil.walk_packages(relaybridge.__path__, 'relaybridge.') "
        "if not m.name.endswith('__main__')]; "
        "[importlib.import_module(name) for name in names]; print(len(names))"
    )
    done = run(
        ["-c", code],
        tmp_path,
        PYTHONPATH=str(ROOT),
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 50
