"""The example project is safe by default: DEBUG off unless asked for, no secret key
that anyone could read in the repository, and errors logged with DEBUG off.

Each case loads ``project.settings`` in a fresh interpreter with an environment of
its own, as a deployment (or a developer's shell) would.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from project.development_key import development_secret_key

ROOT = Path(__file__).resolve().parents[2]
KEY_FILE = ROOT / ".django-secret-key"
PROBE = """
import django
from django.conf import settings
django.setup()
print("DEBUG", settings.DEBUG)
print("KEY", settings.SECRET_KEY)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "RELAYBRIDGE_", "RELAY_", "REDIS_", "DATABASE_"))
    }
    env.update(DJANGO_SETTINGS_MODULE="project.settings", PYTHONPATH=str(ROOT), **extra)
    return env


def _run(args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _probe(**extra: str) -> dict[str, str]:
    done = _run(["-c", PROBE], **extra)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_without_an_environment_debug_is_off_and_a_secret_key_is_required() -> None:
    done = _run(["manage.py", "check"])
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "DJANGO_SECRET_KEY is not set" in done.stderr
    assert "DJANGO_DEBUG=1" in done.stderr  # the way out for development, named


def test_with_a_secret_key_from_the_environment_debug_stays_off() -> None:
    key = "k" * 60
    assert _probe(DJANGO_SECRET_KEY=key) == {"DEBUG": "False", "KEY": key}
    # Only "1" turns DEBUG on: "true", "0" and "" leave it off.
    for value in ("0", "true", "", "yes"):
        assert _probe(DJANGO_SECRET_KEY=key, DJANGO_DEBUG=value)["DEBUG"] == "False", value


def test_with_debug_on_the_key_is_generated_once_into_a_git_ignored_file() -> None:
    first = _probe(DJANGO_DEBUG="1")
    assert first["DEBUG"] == "True"
    assert KEY_FILE.read_text().strip() == first["KEY"]
    assert len(first["KEY"]) >= 50 and "insecure" not in first["KEY"]
    assert stat.S_IMODE(KEY_FILE.stat().st_mode) == 0o600
    assert _probe(DJANGO_DEBUG="1")["KEY"] == first["KEY"]  # kept across restarts
    ignored = subprocess.run(["git", "check-ignore", "-q", str(KEY_FILE)], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".django-secret-key is not git-ignored"
    # A key from the environment wins, DEBUG or not.
    assert _probe(DJANGO_DEBUG="1", DJANGO_SECRET_KEY="e" * 60)["KEY"] == "e" * 60


def test_no_secret_key_is_committed_in_the_settings() -> None:
    text = (ROOT / "project" / "settings.py").read_text()
    assert "insecure" not in text
    assert 'os.environ.get("DJANGO_SECRET_KEY",' not in text  # no fallback literal


def test_processes_starting_together_agree_on_one_development_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    keys: list[str] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        keys.append(development_secret_key(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no candidates left


def test_a_damaged_development_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="delete it"):
        development_secret_key(path)


def test_with_debug_off_errors_reach_the_console() -> None:
    # What Django logs when a view raises: django.request at ERROR, with the traceback.
    # Django's default logging sends it to the console only with DEBUG on.
    script = (
        "import django, logging; django.setup()\n"
        "try:\n    raise RuntimeError('the view broke')\n"
        "except RuntimeError:\n"
        "    logging.getLogger('django.request').error('Internal Server Error: /x/', "
        "exc_info=True)\n"
    )
    done = _run(["-c", script], DJANGO_SECRET_KEY="k" * 60)
    assert done.returncode == 0, done.stderr
    assert "Internal Server Error: /x/" in done.stderr
    assert "RuntimeError: the view broke" in done.stderr
