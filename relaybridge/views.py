"""The Retry and Stop buttons: POSTs that change a run for everyone watching its thread.

Both are login-required, CSRF-protected (Django's middleware) and checked with the
adapter's ``can_view`` on the run's thread. An unknown run id is a 404, a refused
user a 403, a run in the wrong state a 409. The new status is pushed to the
thread's group, so every tab on every Daphne process sees it.

A fetch sending ``Accept: application/json`` gets JSON; a plain
form POST is redirected back to the page it came from, so the buttons work
without JavaScript.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from . import services
from .adapters import get_adapter
from .models import AgentRun

#: What a button does to a permitted run: an HTTP status and the JSON body.
Action = Callable[[AgentRun], tuple[int, dict[str, Any]]]


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _answer(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
    if _wants_json(request) or status == 403:
        return JsonResponse(body, status=status)
    # A plain form: back to the page, which shows the run's state on reload.
    back = request.headers.get("Referer", "")
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(back if back and safe else "/")


def _guarded(request: HttpRequest, run_id: uuid.UUID, action: Action) -> HttpResponse:
    run = services.get_run(run_id)
    if run is None:
        raise Http404("No such run.")
    adapter = get_adapter()
    if not adapter.can_view(request.user, adapter.thread_for(run.comment)):
        return _answer(request, 403, {"ok": False, "error": "forbidden"})
    status, body = action(run)
    return _answer(request, status, body)


def _retry(run: AgentRun) -> tuple[int, dict[str, Any]]:
    run_id = str(run.run_id)
    if not services.retry_run(run_id):
        return 409, {"ok": False, "error": "not retryable", "status": run.status}
    # The old attempt's text must not hold back the new stream's sequence numbers.
    services.clear_stream(run_id)
    run.refresh_from_db()
    services.push_status(run)
    return 200, {"ok": True, "status": run.status}


def _stop(run: AgentRun) -> tuple[int, dict[str, Any]]:
    run_id = str(run.run_id)
    text, seq = services.read_stream(run_id)
    # A run stopped while waiting for a retry has no stream, only its earlier text.
    partial = text or run.partial_text
    if not services.mark_stopped(run_id, partial):
        return 409, {"ok": False, "error": "already finished", "status": run.status}
    services.clear_stream(run_id)
    run.refresh_from_db()
    services.push_status(run, partial, seq)
    return 200, {"ok": True, "status": run.status, "text": partial}


@require_POST
@csrf_protect
@login_required
def retry_run(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Retry a failed or stopped run: the same run is queued and dispatched again."""
    return _guarded(request, run_id, _retry)


@require_POST
@csrf_protect
@login_required
def stop_run(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Stop an unfinished run, keeping the text streamed so far."""
    return _guarded(request, run_id, _stop)
