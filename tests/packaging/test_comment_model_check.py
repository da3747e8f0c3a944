"""An unset or unknown ``RELAYBRIDGE_COMMENT_MODEL`` is relaybridge's check, with the remedy.

Each case runs ``django-admin`` in a child process with settings that have no ``tasks``
app (tests/packaging/minimal_settings.py), since the setting shapes models at import.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REMEDY = 'HINT: Set RELAYBRIDGE_COMMENT_MODEL = "yourapp.Comment"'
CHECK_ID = re.compile(r"\(([a-z_]+\.[A-Z]\d{3})\)")


def django_admin(
    *args: str, comment_model: str | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RELAYBRIDGE_", "RELAY_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.packaging.minimal_settings",
        PYTHONPATH=str(ROOT),
        MINIMAL_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
    )
    if comment_model is not None:
        env["RELAYBRIDGE_COMMENT_MODEL"] = comment_model
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def error_ids(output: str) -> list[str]:
    errors = output.split("WARNINGS:")[0]
    return CHECK_ID.findall(errors)


@pytest.mark.parametrize(
    ("comment_model", "message"),
    [
        (None, "RELAYBRIDGE_COMMENT_MODEL is not set."),
        ("", "RELAYBRIDGE_COMMENT_MODEL is not set."),
        ("tasks.Comment", "but no installed app has the label 'tasks'"),
        ("Comment", "not 'app_label.ModelName'"),
    ],
)
def test_an_unusable_setting_is_relaybridges_one_error(
    comment_model: str | None, message: str, tmp_path: Path
) -> None:
    done = django_admin("check", comment_model=comment_model, tmp_path=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert error_ids(done.stderr) == ["relaybridge.E003"], done.stderr
    assert message in done.stderr
    assert REMEDY in done.stderr


def test_a_model_the_app_lacks_is_reported_by_relaybridge_first(tmp_path: Path) -> None:
    # The app is installed, so the foreign keys have to name the model while models
    # load; Django's reference errors follow relaybridge's (one per field, no more).
    done = django_admin("check", comment_model="auth.Comment", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    ids = error_ids(done.stderr)
    assert ids[0] == "relaybridge.E003"
    assert sorted(ids[1:]) == ["fields.E307", "fields.E307"]
    assert "but app 'auth' has no model 'Comment'" in done.stderr
    assert REMEDY in done.stderr


def test_migrate_stops_at_the_check(tmp_path: Path) -> None:
    done = django_admin("migrate", "--noinput", comment_model=None, tmp_path=tmp_path)
    assert done.returncode == 1
    assert error_ids(done.stderr) == ["relaybridge.E003"]
    database = tmp_path / "db.sqlite3"
    if database.exists():
        with sqlite3.connect(database) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "relaybridge_agentrun" not in tables


def test_migrate_without_the_checks_refuses_with_the_remedy(tmp_path: Path) -> None:
    done = django_admin(
        "migrate", "--noinput", "--skip-checks", comment_model=None, tmp_path=tmp_path
    )
    assert done.returncode == 1
    assert "ImproperlyConfigured: RELAYBRIDGE_COMMENT_MODEL is not set." in done.stderr
    assert 'Set RELAYBRIDGE_COMMENT_MODEL = "yourapp.Comment"' in done.stderr
