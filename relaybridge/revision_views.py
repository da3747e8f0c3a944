"""The Regenerate and "Ask again with the edited text" buttons (see relaybridge.revisions).

Like Retry and Stop: login-required, CSRF-protected POSTs, checked with
:func:`relaybridge.revisions.may_control` (``can_view``, then ``can_control``);
404 for an unknown run, 403 for a refused user, 409 when the run cannot be asked
again (with ``error`` and a translated ``message``). A fetch asking for JSON gets
``ok``, ``status`` and ``run``: the *new* run's ``run.status`` message, which every
page watching the thread also receives; a plain form POST is redirected back to
its page.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from . import services, streams
from .adapters import get_adapter
from .models import ACTIVE_STATUSES, AgentRun
from .questions import question_digest
from .revisions import may_control, next_run
from .views import _answer

Status = AgentRun.Status


def _conflict(request: HttpRequest, run: AgentRun, error: str, message: str) -> HttpResponse:
    body = {"ok": False, "error": error, "status": run.status, "message": message}
    return _answer(request, 409, body)


def _permitted(request: HttpRequest, run_id: uuid.UUID) -> tuple[AgentRun, HttpResponse | None]:
    run = services.get_run(run_id)
    if run is None:
        raise Http404("No such run.")
    if not may_control(request.user, run):
        message = gettext("You may not change the runs of this thread.")
        return run, _answer(request, 403, {"ok": False, "error": "forbidden", "message": message})
    if run.comment is None:
        message = gettext("The question was deleted.")
        return run, _conflict(request, run, "question deleted", message)
    return run, None


def _created(request: HttpRequest, run: AgentRun) -> HttpResponse:
    body: dict[str, Any] = {"ok": True, "status": run.status, "run": streams.status_event(run)}
    return _answer(request, 200, body)


def _busy(run: AgentRun) -> bool:
    """Is another revision of the run's (comment, agent) still going?"""
    return AgentRun.objects.filter(
        comment=run.comment, agent_id=run.agent_id, status__in=ACTIVE_STATUSES
    ).exists()


@require_POST
@csrf_protect
@login_required
def regenerate_run(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Ask a replied run's question again: a new revision whose reply is labelled."""
    run, refused = _permitted(request, run_id)
    if refused is not None:
        return refused
    name = get_adapter().agent_display_name(run.agent_id)
    if run.status != Status.REPLIED:
        message = gettext("Only an answer can be regenerated.")
        return _conflict(request, run, "not replied", message)
    with transaction.atomic():
        if _busy(run):
            message = gettext("%(agent)s is already answering this.") % {"agent": name}
            return _conflict(request, run, "busy", message)
        new = next_run(run, run.comment, regenerates=run)
    if new is None:
        message = gettext("%(agent)s is already answering this.") % {"agent": name}
        return _conflict(request, run, "busy", message)
    return _created(request, new)


@require_POST
@csrf_protect
@login_required
def ask_again(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Ask a replied run's agent again, after its question was edited."""
    run, refused = _permitted(request, run_id)
    if refused is not None:
        return refused
    name = get_adapter().agent_display_name(run.agent_id)
    current = question_digest(get_adapter().text(run.comment))
    latest = (
        AgentRun.objects.filter(comment=run.comment, agent_id=run.agent_id)
        .order_by("-revision")
        .first()
    )
    if latest is None or latest.pk != run.pk or run.status != Status.REPLIED:
        message = gettext("%(agent)s was asked again already.") % {"agent": name}
        return _conflict(request, run, "superseded", message)
    if run.question_digest == current:
        message = gettext("The question has not changed since %(agent)s answered.") % {
            "agent": name
        }
        return _conflict(request, run, "unchanged", message)
    with transaction.atomic():
        new = next_run(run, run.comment)
    if new is None:
        message = gettext("%(agent)s was asked again already.") % {"agent": name}
        return _conflict(request, run, "superseded", message)
    return _created(request, new)
