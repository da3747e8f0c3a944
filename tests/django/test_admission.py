"""Admission: who may call which agent, and quotas on runs and tokens.

A mention that is not admitted is created ``refused`` with the reason, never sent,
and shown under its comment and in the ledger.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import timedelta
from html import escape
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.checks import Error
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.template import Context, Template
from django.test import Client
from django.utils import timezone

from project.tasks.models import Comment, Task
from relaybridge import services
from relaybridge.checks import check_setting_values
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode
from relaybridge.quotas import parse_rules, quota_problems

from . import admission_backend
from .conftest import drain

MakeComment = Callable[..., Comment]
Status = AgentRun.Status
PREVIEW = "/relaybridge/mentions/preview/"


def runs_of(comment: Comment) -> list[AgentRun]:
    return list(AgentRun.objects.filter(comment=comment).order_by("id"))


def statuses(comment: Comment) -> list[tuple[str, str]]:
    return [(run.agent_id, run.status) for run in runs_of(comment)]


def render_runs(comment: Comment) -> str:
    template = Template("{% load relaybridge %}{% relaybridge_runs comment %}")
    return template.render(Context({"comment": comment}))


def reply(run: AgentRun, text: str, tokens: int | None = None) -> Comment:
    """The agent answers ``run`` with ``text`` (reporting ``tokens``), as the worker records it."""
    assert services.claim_for_sending(run.run_id)
    assert services.mark_accepted(run.run_id, f"evt_{run.pk}")
    metadata = {"tokens_used": tokens} if tokens is not None else None
    saved: Comment = services.record_reply(run.run_id, text, metadata)
    return saved


@pytest.fixture
def klyve_needs_permission(settings: Any) -> Any:
    settings.RELAYBRIDGE_AGENT_PERMISSIONS = {"klyve": "tasks.change_task"}
    return settings


@pytest.fixture
def bob(db: None) -> Any:
    return get_user_model().objects.create_user("bob", password="pw", first_name="Bob")


# -- who may call an agent ---------------------------------------------------------------


@pytest.mark.django_db
def test_everyone_may_call_every_agent_by_default(make_comment: MakeComment, user: Any) -> None:
    comment = make_comment("@athena @klyve look")
    assert [status for _agent, status in statuses(comment)] == [Status.QUEUED] * 2
    assert {run.charged_to_id for run in runs_of(comment)} == {user.pk}


@pytest.mark.django_db
def test_a_mention_without_the_permission_is_refused_visibly(
    klyve_needs_permission: Any,
    make_comment: MakeComment,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        comment = make_comment("@athena @klyve deploy please")
    athena, klyve = runs_of(comment)
    assert athena.status == Status.SENDING
    assert klyve.status == Status.REFUSED
    assert (klyve.error_code, klyve.error_message) == (
        ErrorCode.NOT_PERMITTED,
        "You may not call @klyve.",
    )
    assert klyve.finished_at is not None and klyve.charged_to_id == user.pk
    assert [message["run_id"] for message in drain()] == [str(athena.run_id)]
    assert services.claim_for_sending(klyve.run_id) is None
    assert not services.retry_run(klyve.run_id)

    html = render_runs(comment)
    assert f'data-relaybridge-run="{klyve.run_id}"' in html
    assert "You may not call @klyve." in html
    assert "Retry" not in html


@pytest.mark.django_db
def test_the_permission_lets_a_person_call_it(
    klyve_needs_permission: Any, make_comment: MakeComment, user: Any
) -> None:
    user.user_permissions.add(Permission.objects.get(codename="change_task"))
    comment = make_comment("@klyve deploy please")
    assert statuses(comment) == [("klyve", Status.QUEUED)]


@pytest.mark.django_db
def test_an_inactive_or_missing_person_may_not_call_a_guarded_agent(
    klyve_needs_permission: Any, make_comment: MakeComment, user: Any
) -> None:
    user.user_permissions.add(Permission.objects.get(codename="change_task"))
    user.is_active = False
    user.save()
    assert statuses(make_comment("@klyve hi")) == [("klyve", Status.REFUSED)]
    # No person at all (a host's import): the guarded agent is refused, the others run.
    comment = make_comment("@klyve @athena hi", author=None)
    assert statuses(comment) == [("klyve", Status.REFUSED), ("athena", Status.QUEUED)]


@pytest.mark.django_db
def test_an_object_permission_on_the_thread_is_enough(
    klyve_needs_permission: Any, make_comment: MakeComment, user: Any, task: Task
) -> None:
    klyve_needs_permission.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.django.admission_backend.ObjectPermissionBackend",
    ]
    admission_backend.GRANTS.add((user.pk, "tasks.change_task", "tasks.task", task.pk))
    try:
        assert statuses(make_comment("@klyve here")) == [("klyve", Status.QUEUED)]
        other = Task.objects.create(title="Elsewhere")
        elsewhere = make_comment("@klyve there", task=other)
        assert statuses(elsewhere) == [("klyve", Status.REFUSED)]
    finally:
        admission_backend.GRANTS.clear()


@pytest.mark.django_db
def test_an_agent_hop_is_checked_against_the_person_who_started_the_chain(
    klyve_needs_permission: Any, make_comment: MakeComment, user: Any
) -> None:
    klyve_needs_permission.RELAYBRIDGE_AGENT_HOPS = True
    (athena,) = runs_of(make_comment("@athena ask klyve to deploy"))
    answer = reply(athena, "@klyve please deploy")
    (hop,) = runs_of(answer)
    assert hop.hop_depth == 1 and hop.requested_by_id is None
    assert hop.charged_to_id == user.pk
    assert (hop.status, hop.error_message) == (Status.REFUSED, "You may not call @klyve.")

    # With the permission, the same chain goes through.
    user.user_permissions.add(Permission.objects.get(codename="change_task"))
    (athena,) = runs_of(make_comment("@athena again"))
    answer = reply(athena, "@klyve please deploy")
    (hop,) = runs_of(answer)
    assert (hop.status, hop.charged_to_id) == (Status.QUEUED, user.pk)


@pytest.mark.django_db
def test_a_hop_from_a_comment_no_person_started_is_charged_to_nobody(
    klyve_needs_permission: Any, make_comment: MakeComment
) -> None:
    klyve_needs_permission.RELAYBRIDGE_AGENT_HOPS = True
    (hop,) = runs_of(make_comment("@klyve from an import", agent_id="athena"))
    assert (hop.status, hop.charged_to_id) == (Status.REFUSED, None)
    (free,) = runs_of(make_comment("@slow from an import", agent_id="athena"))
    assert free.status == Status.QUEUED


# -- quotas -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_runs_per_person_per_hour_and_when_the_limit_resets(
    settings: Any, make_comment: MakeComment, user: Any, bob: Any
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 2, "per": "hour"}]
    first, second = (make_comment(f"@athena {n}") for n in range(2))
    now = timezone.now()
    AgentRun.objects.filter(comment=first).update(queued_at=now - timedelta(minutes=40))
    AgentRun.objects.filter(comment=second).update(queued_at=now - timedelta(minutes=10))

    with timezone.override("Asia/Kolkata"):  # the person's zone: a half-hour offset shows
        third = make_comment("@athena 3")
    (refused,) = runs_of(third)
    resets = timezone.localtime(
        now - timedelta(minutes=40) + timedelta(hours=1), timezone.get_fixed_timezone(330)
    )
    assert refused.status == Status.REFUSED
    assert refused.error_code == ErrorCode.QUOTA
    kolkata_today = timezone.localtime(now, timezone.get_fixed_timezone(330)).date()
    when = "at" if resets.date() == kolkata_today else "tomorrow at"
    assert refused.error_message == (
        f"Athena's limit for you is reached — it resets {when} {resets:%H:%M}."
    )
    assert escape(refused.error_message) in render_runs(third)
    # Another person, another count; another agent, the same person's count.
    assert statuses(make_comment("@athena mine", author=bob)) == [("athena", Status.QUEUED)]
    assert statuses(make_comment("@klyve 4")) == [("klyve", Status.REFUSED)]


@pytest.mark.django_db
def test_the_window_is_the_last_hour_to_the_second(
    settings: Any, make_comment: MakeComment
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 1, "per": "hour"}]
    earlier = make_comment("@athena earlier")
    # Just inside the window: still counted.
    AgentRun.objects.filter(comment=earlier).update(
        queued_at=timezone.now() - timedelta(seconds=3600 - 30)
    )
    assert statuses(make_comment("@athena now")) == [("athena", Status.REFUSED)]
    # An hour old: out of the window (it ends where the next run may start).
    AgentRun.objects.filter(comment=earlier).update(
        queued_at=timezone.now() - timedelta(seconds=3600)
    )
    assert statuses(make_comment("@athena now again")) == [("athena", Status.QUEUED)]


@pytest.mark.django_db
def test_a_day_limit_counts_the_last_24_hours(settings: Any, make_comment: MakeComment) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 1, "per": "day"}]
    earlier = make_comment("@athena yesterday")
    AgentRun.objects.filter(comment=earlier).update(queued_at=timezone.now() - timedelta(hours=23))
    (refused,) = runs_of(make_comment("@athena today"))
    assert refused.status == Status.REFUSED
    assert "it resets at " in refused.error_message or "tomorrow at " in refused.error_message
    AgentRun.objects.filter(comment=earlier).update(
        queued_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    assert statuses(make_comment("@athena later")) == [("athena", Status.QUEUED)]


@pytest.mark.django_db
def test_a_reset_on_the_next_day_says_tomorrow(settings: Any, make_comment: MakeComment) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 1, "per": "day"}]
    make_comment("@athena the first")
    # 24 hours from now is always tomorrow.
    (refused,) = runs_of(make_comment("@athena the second"))
    assert "— it resets tomorrow at " in refused.error_message


@pytest.mark.django_db
def test_the_token_quota_is_crossed_by_the_last_reply(
    settings: Any, make_comment: MakeComment
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "tokens": 100, "per": "day"}]
    (first,) = runs_of(make_comment("@athena one"))
    reply(first, "Done.", tokens=60)
    (second,) = runs_of(make_comment("@athena two"))
    assert second.status == Status.QUEUED  # 60 of 100 used
    reply(second, "Done too.", tokens=50)  # the reply that takes it past: kept
    second.refresh_from_db()
    assert (second.status, second.tokens_used) == (Status.REPLIED, 50)
    (third,) = runs_of(make_comment("@athena three"))
    assert third.status == Status.REFUSED
    assert third.error_message.startswith("Athena's limit for you is reached — it resets ")


@pytest.mark.django_db
def test_one_comment_asking_two_agents_counts_both(
    settings: Any, make_comment: MakeComment
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 1, "per": "hour"}]
    comment = make_comment("@athena @klyve both")
    assert statuses(comment) == [("athena", Status.QUEUED), ("klyve", Status.REFUSED)]


@pytest.mark.django_db
def test_an_agents_limit_for_everyone_and_a_narrowed_rule(
    settings: Any, make_comment: MakeComment, bob: Any
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "agent", "agent": "klyve", "runs": 1, "per": "hour"}]
    assert statuses(make_comment("@klyve first")) == [("klyve", Status.QUEUED)]
    (refused,) = runs_of(make_comment("@klyve mine", author=bob))
    assert refused.status == Status.REFUSED
    assert re.fullmatch(
        r"Klyve's limit is reached — it resets (tomorrow )?at \d\d:\d\d\.", refused.error_message
    ), refused.error_message
    # The rule names klyve: other agents are not limited.
    assert statuses(make_comment("@athena @slow free")) == [
        ("athena", Status.QUEUED),
        ("slow", Status.QUEUED),
    ]


@pytest.mark.django_db
def test_a_threads_limit(settings: Any, make_comment: MakeComment, bob: Any) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "thread", "runs": 2, "per": "hour"}]
    assert statuses(make_comment("@athena @klyve")) == [
        ("athena", Status.QUEUED),
        ("klyve", Status.QUEUED),
    ]
    (refused,) = runs_of(make_comment("@slow too", author=bob))
    assert refused.error_message.startswith("Slow's limit in this thread is reached")
    other = Task.objects.create(title="Elsewhere")
    assert statuses(make_comment("@slow there", task=other)) == [("slow", Status.QUEUED)]


@pytest.mark.django_db
def test_refused_runs_count_against_nothing(settings: Any, make_comment: MakeComment) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 1, "per": "hour"}]
    make_comment("@athena one")
    for n in range(3):
        assert statuses(make_comment(f"@athena {n}")) == [("athena", Status.REFUSED)]
    AgentRun.objects.exclude(status=Status.REFUSED).update(
        queued_at=timezone.now() - timedelta(hours=2)
    )
    assert statuses(make_comment("@athena again")) == [("athena", Status.QUEUED)]


@pytest.mark.django_db
def test_a_hop_counts_against_the_person_who_started_the_chain(
    settings: Any, make_comment: MakeComment, user: Any
) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 3
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 2, "per": "hour"}]
    (athena,) = runs_of(make_comment("@athena ask klyve"))
    (hop,) = runs_of(reply(athena, "@klyve over to you"))
    assert (hop.status, hop.charged_to_id) == (Status.QUEUED, user.pk)
    (refused,) = runs_of(make_comment("@slow and you"))
    assert refused.status == Status.REFUSED
    # And a hop over the person's limit is refused with the quota's reason.
    (again,) = runs_of(reply(hop, "@athena back to you"))
    assert (again.status, again.error_code) == (Status.REFUSED, ErrorCode.QUOTA)
    assert again.error_message.startswith("Athena's limit for you is reached")


@pytest.mark.django_db(transaction=True)
def test_parallel_posts_cannot_pass_a_limit(settings: Any, task: Task) -> None:
    """Eight people post at once, each in a request of its own: the thread's limit holds."""
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL); SQLite serializes writers itself")
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "thread", "runs": 3, "per": "hour"}]
    people = [get_user_model().objects.create_user(f"p{n}", password="pw") for n in range(8)]
    start = threading.Barrier(len(people))
    errors: list[BaseException] = []
    codes: list[int] = []

    def post(person: Any) -> None:
        try:
            client = Client()
            client.force_login(person)
            start.wait(10)
            response = client.post(f"/tasks/{task.pk}/", {"body": "@athena go"})
            codes.append(response.status_code)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=post, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert codes == [302] * len(people)
    runs = AgentRun.objects.filter(thread_key=f"tasks.task.{task.pk}")
    assert runs.count() == len(people)
    assert runs.exclude(status=Status.REFUSED).count() == 3
    assert runs.filter(status=Status.REFUSED, error_code=ErrorCode.QUOTA).count() == 5


# -- the preview and the autocomplete -----------------------------------------------------


@pytest.mark.django_db
def test_the_preview_warns_before_posting(
    klyve_needs_permission: Any, make_comment: MakeComment, user: Any, task: Task
) -> None:
    klyve_needs_permission.RELAYBRIDGE_QUOTAS = [
        {"scope": "person", "agent": "slow", "runs": 1, "per": "hour"}
    ]
    make_comment("@slow once")
    client = Client()
    client.force_login(user)
    answer = client.post(
        PREVIEW,
        {"text": "@athena @klyve @slow", "thread": f"tasks.task.{task.pk}"},
        HTTP_ACCEPT="application/json",
    ).json()
    agents = {agent["agent_id"]: agent for agent in answer["agents"]}
    assert "refused" not in agents["athena"]
    assert agents["klyve"]["not_permitted"] is True
    assert agents["slow"]["not_permitted"] is False
    assert agents["slow"]["refused"].startswith("Slow's limit for you is reached")
    assert answer["message"].startswith(
        "Posting will call Athena, Klyve (not available to you) and Slow."
    )
    # "at 14:05", or "tomorrow at 00:05" when the hour ends after midnight.
    assert re.search(
        r"Slow's limit for you is reached — it resets (tomorrow )?at \d\d:\d\d\.",
        answer["message"],
    ), answer["message"]


@pytest.mark.django_db
def test_the_preview_counts_an_object_permission_on_the_thread_it_posts_to(
    klyve_needs_permission: Any, user: Any, task: Task
) -> None:
    klyve_needs_permission.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.django.admission_backend.ObjectPermissionBackend",
    ]
    admission_backend.GRANTS.add((user.pk, "tasks.change_task", "tasks.task", task.pk))
    client = Client()
    client.force_login(user)
    try:
        here = client.post(PREVIEW, {"text": "@klyve", "thread": f"tasks.task.{task.pk}"}).json()
        assert "refused" not in here["agents"][0]
        nowhere = client.post(PREVIEW, {"text": "@klyve"}).json()
        assert nowhere["agents"][0]["not_permitted"] is True
    finally:
        admission_backend.GRANTS.clear()


@pytest.mark.django_db
def test_the_autocomplete_marks_agents_not_available_to_you(
    klyve_needs_permission: Any, user: Any, task: Task
) -> None:
    client = Client()
    client.force_login(user)
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert '<li data-agent-id="klyve" data-not-permitted="true">' in page
    assert "(not available to you)" in page
    assert '<li data-agent-id="athena">' in page
    assert f'data-relaybridge-thread="tasks.task.{task.pk}"' in page
    assert '"not_permitted": true' in page  # the autocomplete's list


# -- the settings -------------------------------------------------------------------------


def test_quota_rules_are_validated() -> None:
    good = [
        {"scope": "person", "runs": 20, "per": "hour"},
        {"scope": "agent", "agent": "athena", "tokens": 5000, "per": "day"},
    ]
    assert quota_problems(good) == []
    assert [rule.describe() for rule in parse_rules(good)] == [
        "20 runs per person per hour",
        "5000 tokens per agent per day (@athena)",
    ]
    assert quota_problems({"scope": "person"}) == [
        "RELAYBRIDGE_QUOTAS must be a list of rules (dicts)"
    ]
    problems = quota_problems(
        [
            "20/hour",
            {"scope": "team", "runs": 1, "per": "hour"},
            {"scope": "person", "runs": 1, "tokens": 5, "per": "week"},
            {"scope": "person", "runs": 0, "per": "hour"},
            {"scope": "person", "runs": True, "per": "hour"},
            {"scope": "person", "runs": 1, "per": "hour", "agent": ""},
            {"scope": "person", "runs": 1, "per": "hour", "every": 2},
        ]
    )
    assert problems == [
        "RELAYBRIDGE_QUOTAS[0] must be a dict",
        "RELAYBRIDGE_QUOTAS[1]['scope'] must be one of ['person', 'agent', 'thread']",
        "RELAYBRIDGE_QUOTAS[2]['per'] must be one of ['hour', 'day']",
        "RELAYBRIDGE_QUOTAS[2] must have exactly one of 'runs' and 'tokens'",
        "RELAYBRIDGE_QUOTAS[3]['runs'] must be a positive integer",
        "RELAYBRIDGE_QUOTAS[4]['runs'] must be a positive integer",
        "RELAYBRIDGE_QUOTAS[5]['agent'] must be an agent id",
        "RELAYBRIDGE_QUOTAS[6] has unknown keys ['every'] "
        "(known: ['agent', 'per', 'runs', 'scope', 'tokens'])",
    ]
    with pytest.raises(ValueError, match="must be a dict"):
        parse_rules(["20/hour"])


def test_the_check_reports_bad_quotas_and_permissions(settings: Any) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": -1, "per": "hour"}]
    settings.RELAYBRIDGE_AGENT_PERMISSIONS = {"klyve": "change_task"}
    messages = check_setting_values()
    assert all(isinstance(message, Error) for message in messages)
    assert {message.id for message in messages} == {"relaybridge.E006"}
    assert [message.msg for message in messages] == [
        "RELAYBRIDGE_AGENT_PERMISSIONS['klyve'] must be a permission 'app_label.codename'",
        "RELAYBRIDGE_QUOTAS[0]['runs'] must be a positive integer",
    ]
    settings.RELAYBRIDGE_AGENT_PERMISSIONS = ["klyve"]
    settings.RELAYBRIDGE_QUOTAS = []
    assert [message.msg for message in check_setting_values()] == [
        "RELAYBRIDGE_AGENT_PERMISSIONS must be a dict of agent id -> 'app_label.codename'"
    ]


# -- relay_status --------------------------------------------------------------------------


@pytest.mark.django_db
def test_relay_status_shows_the_quotas_and_todays_top_users(
    settings: Any, make_comment: MakeComment, bob: Any
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [
        {"scope": "person", "runs": 20, "per": "hour"},
        {"scope": "agent", "agent": "klyve", "tokens": 5000, "per": "day"},
    ]
    settings.RELAYBRIDGE_AGENT_PERMISSIONS = {"klyve": "tasks.change_task"}
    for n in range(3):
        make_comment(f"@athena {n}")
    make_comment("@athena mine", author=bob)
    make_comment("@klyve refused")  # refused runs are no use
    yesterday = make_comment("@athena yesterday")
    AgentRun.objects.filter(comment=yesterday).update(queued_at=timezone.now() - timedelta(days=2))
    out = StringIO()
    call_command("relay_status", stdout=out)
    text = out.getvalue()
    assert "quotas in force:\n  20 runs per person per hour\n" in text
    assert "  5000 tokens per agent per day (@klyve)\n" in text
    assert "  @klyve needs tasks.change_task\n" in text
    assert (
        "today's top users:\n  @athena: alice (3 runs, 0 tokens), bob (1 runs, 0 tokens)\n" in text
    )
    assert "@klyve:" not in text


@pytest.mark.django_db
def test_relay_status_without_quotas_or_runs() -> None:
    out = StringIO()
    call_command("relay_status", stdout=out)
    assert "quotas in force: none (RELAYBRIDGE_QUOTAS)" in out.getvalue()
    assert "today's top users: no runs today" in out.getvalue()
