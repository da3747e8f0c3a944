"""Admission in a real Chromium: the autocomplete and the preview say which agents the
person may not call, or whose limit is reached, before posting; a refused mention
shows under its comment with the reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.demo import test_run_demo
from tests.demo.test_run_demo import ROOT, running_demo

from .browser import RUN, chromium, csp_violations, log_in, new_page, open_task, watch_csp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETTINGS = "tests.e2e.admission_settings"
PREVIEW = ".relaybridge-mention-preview"


def add_person(db_path: Path, env: dict[str, str]) -> None:
    """Carla: a person who may post, but is no superuser and holds no permission."""
    code = (
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_user('carla', password='carla-pw')"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_DEBUG": "1"},  # as run_demo runs: development
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def preview_says(page: Any, words: str) -> None:
    """Wait until the preview under the comment box says ``words``."""
    page.wait_for_function(
        "([selector, words]) => {"
        " const preview = document.querySelector(selector);"
        " return preview && !preview.hidden && preview.textContent.includes(words); }",
        arg=[PREVIEW, words],
    )


def test_refusals_show_in_the_preview_and_under_the_comment(
    tmp_path: Path, monkeypatch: Any
) -> None:
    plain_env = test_run_demo._demo_env

    def env_with_rules(db_path: Path) -> dict[str, str]:
        return {**plain_env(db_path), "DJANGO_SETTINGS_MODULE": SETTINGS}

    monkeypatch.setattr(test_run_demo, "_demo_env", env_with_rules)
    db_path = tmp_path / "admission.sqlite3"
    with running_demo(db_path) as demo, chromium() as browser:
        add_person(db_path, env_with_rules(db_path))
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, demo.url, "carla", "carla-pw")
        task_id = int(str(demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]))
        open_task(page, demo.url, task_id)

        # The autocomplete marks Klyve.
        page.fill("textarea[name=body]", "@kl")
        option = page.wait_for_selector(".relaybridge-mention-option[data-agent-id=klyve]")
        assert option is not None and option.get_attribute("data-not-permitted") == "true"
        assert "not available to you" in option.inner_text()

        # The preview says so before posting.
        page.fill("textarea[name=body]", "@athena @klyve ship it")
        preview_says(page, "not available to you")
        said = page.inner_text(PREVIEW)
        assert said.startswith("Posting will call Athena"), said
        assert "(not available to you)" in said

        # Posted: Athena runs, Klyve is refused under the comment, with the reason.
        page.click("#comment-form button[type=submit]")
        refused = page.wait_for_selector(f"{RUN}[data-agent=klyve][data-status=refused]")
        assert refused is not None
        assert "You may not call @klyve." in refused.inner_text()
        page.wait_for_selector("article.comment--agent[data-agent=athena]")

        # Athena's hourly limit for Carla is now reached: the preview warns.
        page.fill("textarea[name=body]", "@athena once more")
        preview_says(page, "limit for you")
        # "at 14:05", or "tomorrow at 00:05" when the hour ends after midnight.
        reason = r"Athena's limit for you is reached — it resets (tomorrow )?at \d\d:\d\d\."
        assert re.search(reason, page.inner_text(PREVIEW)), page.inner_text(PREVIEW)

        # And after a reload the refusal is still shown, from the server's markup.
        page.reload()
        kept = page.wait_for_selector(f"{RUN}[data-agent=klyve][data-status=refused]")
        assert kept is not None and "You may not call @klyve." in kept.inner_text()
        assert errors == [], f"JavaScript errors: {errors}"


def test_the_usage_page_draws_its_chart_under_the_strict_policy(tmp_path: Path) -> None:
    with running_demo(tmp_path / "usage.sqlite3") as demo, chromium() as browser:
        context = browser.new_context()
        violations: list[str] = []
        watch_csp(context, violations)
        errors: list[str] = []
        page = new_page(context, errors)
        log_in(page, demo.url)
        task_id = int(str(demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]))
        open_task(page, demo.url, task_id)
        page.fill("textarea[name=body]", "@athena count this")
        page.click("#comment-form button[type=submit]")
        page.wait_for_selector("article.comment--agent[data-agent=athena]")

        base = demo.url.rstrip("/")
        page.goto(base + "/admin/relaybridge/agentrun/")
        page.click("a:has-text('Usage')")
        page.wait_for_selector("#relaybridge-usage-chart svg rect[data-outcome=replied]")
        assert "athena" in page.inner_text("#relaybridge-usage-agents")
        violations += csp_violations(page)
        assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
        assert errors == [], f"JavaScript errors: {errors}"
        context.close()
