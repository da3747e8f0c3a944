"""Getting a run ready to send: claim it, build its payload, store the payload.

``dispatch_run`` (the Celery task) does this and then hands the run to the relay
worker's intake; the worker's sweep does it itself for runs whose ``dispatch_run``
never ran or died, and sends them at once.

The task is queued by its name (:data:`DISPATCH_TASK`): :mod:`relaybridge.tasks`
is built on these services, and services never import it back.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from django.db import transaction

from ..protocol.codes import ErrorCode
from ..protocol.policy import describe_error
from .payload import build_payload
from .runs import RunRef
from .transitions import claim_for_sending, record_error, store_payload

logger = logging.getLogger("relaybridge")

#: The name of :func:`relaybridge.tasks.dispatch_run`.
DISPATCH_TASK = "relaybridge.dispatch_run"

Prepared = Literal["ready", "failed", "skipped"]


def prepare_dispatch(run_id: RunRef) -> Prepared:
    """Claim the run and store its payload.

    ``"ready"``: the run is ``sending`` with its payload, to be sent. ``"failed"``: no
    payload could be built (the run failed visibly). ``"skipped"``: someone else has
    the run, or its claim was released meanwhile.
    """
    # One transaction: the claim, its attempt and the payload are committed together,
    # one commit on the way of every mention instead of three; a dispatch that dies
    # before the commit leaves the run as it found it, for the sweep.
    with transaction.atomic():
        run = claim_for_sending(run_id)
        if run is None:
            return "skipped"
        try:
            # A savepoint: a query that fails here leaves the claim's transaction usable.
            with transaction.atomic():
                payload = build_payload(run)
        except Exception:
            logger.exception("could not build the payload of run %s", run.run_id)
            code = ErrorCode.PAYLOAD_ERROR
            record_error(run.run_id, code, describe_error(code))
            return "failed"
        if not store_payload(run.run_id, payload):
            return "skipped"  # no longer sending: not ours to send
    return "ready"


def dispatch_task() -> Any:
    """The registered ``dispatch_run`` task of the current Celery app."""
    from celery import current_app

    return current_app.tasks[DISPATCH_TASK]
