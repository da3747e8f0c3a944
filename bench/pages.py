"""Big threads: the task page with 5 and with 200 comments, in-process.

The example project's task page is requested with Django's test client in the
driver process (same database as the stack, no network), as the demo user. Each
task has a dozen runs in the states a page shows differently (queued, sending,
accepted, streaming, retrying, failed, stopped, refused) and two replied runs
whose replies are agent comments; the other comments are people's. What is counted:

* the queries of one page (after one warm-up request, which stores the replies'
  HTML as the first visit of a real page does): the same for 5 and for 200
  comments when nothing is loaded per comment or per run;
* the render time of the page, relative to the *same page without relaybridge*:
  the same view, context and middleware, with ``tasks/task_detail.html`` replaced by
  a copy from which ``{% load relaybridge %}`` and every relaybridge tag are removed
  and in which an agent's reply is drawn as a person's comment is (its text through
  ``linebreaks``). The ratio is what relaybridge's tags add to the page a host would
  have drawn anyway.

Each figure is the median over rounds; a round times ``requests`` requests of each
page, one page after the other (each after an untimed request that compiles its
templates, as a running site has them compiled), and keeps their medians.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

#: Run states a page draws differently (the replied ones come with a reply comment).
RUN_STATES = (
    "queued",
    "sending",
    "accepted",
    "streaming",
    "streaming",
    "retrying",
    "failed",
    "failed",
    "stopped",
    "refused",
)
REPLIED_RUNS = 2
#: The example project's agents besides athena, who replies (one run per comment and agent).
AGENTS = ("klyve", "sleepy", "slow", "broken")
TEMPLATE = "tasks/task_detail.html"
_TAG = re.compile(r"{%\s*(load relaybridge|relaybridge_\w+)[^%]*%}")
_AGENT_BRANCH = "{% if comment.is_agent %}\n    {% relaybridge_reply comment %}\n    {% else %}"


def plain_template(source: str) -> str:
    """``source`` without relaybridge: its tags removed, agents' replies drawn as
    people's comments. Refuses a template whose shape it does not know."""
    if _AGENT_BRANCH not in source:
        raise RuntimeError(f"{TEMPLATE} changed: update bench.pages.plain_template")
    body = source.replace(_AGENT_BRANCH, "{% if False %}{% else %}")
    return _TAG.sub("", body)


def seed_thread(comments: int, title: str) -> int:
    """A task with ``comments`` comments, a dozen runs among them; its id."""
    from django.utils import timezone

    from project.tasks.models import Comment, Task
    from relaybridge.adapters import get_adapter
    from relaybridge.models import AgentRun
    from relaybridge.rendering import render_agent_markdown, render_digest

    from .actions import author

    user = author()
    task = Task.objects.create(title=title, description="A long thread.")
    adapter = get_adapter()
    thread_key, thread_id = adapter.thread_key(task), adapter.thread_id(task)
    runs_wanted = len(RUN_STATES) + REPLIED_RUNS
    if comments < 2 * REPLIED_RUNS:
        raise ValueError("a thread needs room for its replies")
    people: list[Any] = []
    asking: list[Any] = []
    made = 0
    runs: list[AgentRun] = []
    # People's comments first, each replied run followed by its reply comment; the
    # remaining comments are people's, spread through the thread.
    for n in range(REPLIED_RUNS):
        asked = Comment.objects.create(task=task, author=user, body=f"Athena, question {n}?")
        text = f"Answer **{n}**, with a [link](https://example.com/{n})."
        reply = Comment.objects.create(task=task, agent_id="athena", body=text)
        asking.append(asked)
        made += 2
        runs.append(
            AgentRun(
                comment=asked,
                agent_id="athena",
                thread_id=thread_id,
                thread_key=thread_key,
                requested_by=user,
                status="replied",
                reply_comment=reply,
                reply_html=render_agent_markdown(text),
                reply_digest=render_digest(text),
                finished_at=timezone.now(),
            )
        )
    while made < comments:
        people.append(
            Comment(
                task=task, author=user, body=f"Comment {made}: @athena see above.\nSecond line."
            )
        )
        made += 1
    people = asking + Comment.objects.bulk_create(people)
    # One run per comment and agent: spread over the people's comments (the first
    # and every step-th), then over the agents, as a busy thread has them.
    step = max(1, len(people) // len(RUN_STATES))
    slots = [(c, a) for a in AGENTS for c in range(0, len(people), step)]
    if len(slots) < len(RUN_STATES):
        raise ValueError(f"{comments} comments are too few for {runs_wanted} runs")
    for n, state in enumerate(RUN_STATES):
        comment_index, agent_id = slots[n]
        runs.append(
            AgentRun(
                comment=people[comment_index],
                agent_id=agent_id,
                thread_id=thread_id,
                thread_key=thread_key,
                requested_by=user,
                status=state,
                partial_text="Partial answer so far" if state in {"streaming", "stopped"} else "",
                error_code="AGENT_TIMEOUT" if state in {"failed", "retrying"} else "",
                error_message="The agent did not answer." if state == "failed" else "",
            )
        )
    AgentRun.objects.bulk_create(runs)
    assert len(runs) == runs_wanted
    return int(task.pk)


def _client() -> Any:
    from django.test import Client

    from .actions import author

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(author())
    return client


def _get(client: Any, url: str) -> float:
    began = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return elapsed


def count_queries(client: Any, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        _get(client, url)
    return len(captured)


def _time_page(client: Any, url: str, requests: int, plain_dir: Path) -> tuple[float, float]:
    """Median ms of the page with relaybridge and of the same page without it."""
    from django.conf import settings
    from django.test.utils import override_settings

    engines: list[dict[str, Any]] = [dict(engine) for engine in settings.TEMPLATES]
    plain_engines = [
        {**engine, "DIRS": [str(plain_dir), *list(engine.get("DIRS") or [])]} for engine in engines
    ]
    # In two blocks, each after one untimed request: a change of TEMPLATES (entering or
    # leaving the override) makes Django drop its template engines, so the first
    # request after it compiles the page's templates again, which a site does once
    # per process. Alternating request by request timed that compiling every time
    # (relaybridge's seven templates, about 4 ms here).
    _get(client, url)
    ours = [_get(client, url) for _ in range(requests)]
    with override_settings(TEMPLATES=plain_engines):
        _get(client, url)
        plain = [_get(client, url) for _ in range(requests)]
    return statistics.median(ours), statistics.median(plain)


def big_threads(*, small: int, big: int, rounds: int, requests: int) -> dict[str, Any]:
    """Queries and render times of the task page at ``small`` and ``big`` comments."""
    from django.db import connection, reset_queries
    from django.template.loader import get_template

    source = Path(get_template(TEMPLATE).origin.name).read_text()  # type: ignore[attr-defined]
    urls = {
        size: f"/tasks/{seed_thread(size, f'Big thread, {size} comments')}/"
        for size in (small, big)
    }
    client = _client()
    queries: dict[int, int] = {}
    for size, url in urls.items():
        _get(client, url)  # the first visit stores replies' HTML, as a real one would
        queries[size] = count_queries(client, url)
    with tempfile.TemporaryDirectory(prefix="relaybridge-plain-") as plain_dir:
        target = Path(plain_dir) / TEMPLATE
        target.parent.mkdir(parents=True)
        target.write_text(plain_template(source))
        per_round = []
        for _ in range(rounds):
            ours, plain = _time_page(client, urls[big], requests, Path(plain_dir))
            per_round.append(
                {
                    "ms": round(ours, 2),
                    "ms_without_relaybridge": round(plain, 2),
                    "ratio": ours / plain,
                }
            )
        small_ours, small_plain = _time_page(client, urls[small], requests, Path(plain_dir))
    reset_queries()
    connection.close()
    ratios = [r["ratio"] for r in per_round]
    return {
        "comments": [small, big],
        "runs_per_thread": len(RUN_STATES) + REPLIED_RUNS,
        "queries": {str(size): count for size, count in queries.items()},
        "rounds": rounds,
        "requests_per_round": requests,
        "render_rounds": [{**r, "ratio": round(r["ratio"], 3)} for r in per_round],
        "ratio_200": round(statistics.median(ratios), 3),
        "ratio_200_spread": [round(min(ratios), 3), round(max(ratios), 3)],
        "small_ms": round(small_ours, 2),
        "small_ms_without_relaybridge": round(small_plain, 2),
    }
