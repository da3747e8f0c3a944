"""Celery tasks: thin wrappers over :mod:`relaybridge.services`.

Tasks take run ids (never model instances), are idempotent and ``acks_late``: a
redelivered or duplicated ``dispatch_run`` finds the run already claimed and does
nothing, so a mention is handed to the relay worker once.
"""

from __future__ import annotations

import logging

from celery import shared_task
from channels import DEFAULT_CHANNEL_LAYER
from django.db import connections

from .conf import relay_settings
from .services.dispatch import DISPATCH_TASK, prepare_dispatch
from .services.runs import as_uuid
from .streams import dispatch_message
from .sync_sends import LayerMissing, send_from_sync

logger = logging.getLogger("relaybridge")


@shared_task(name=DISPATCH_TASK, acks_late=True, ignore_result=True)
def dispatch_run(run_id: str) -> str:
    """Claim the run, build and store its payload, hand it to the relay worker.

    Returns what happened: ``"sent"``, ``"pending"`` (claimed, but the channel
    layer did not take it: the worker's sweep of ``sending`` runs will), ``"failed"``
    (no payload could be built) or ``"skipped"`` (someone else has the run).
    """
    _drop_broken_connections()
    prepared = prepare_dispatch(run_id)
    if prepared != "ready":
        return prepared
    return "sent" if hand_to_worker(str(as_uuid(run_id))) else "pending"


def _drop_broken_connections() -> None:
    """Close a database connection that no longer works, so that this task opens a new one.

    A Celery worker told to keep its connection across tasks (``CELERY_DB_REUSE_MAX``,
    which spares every mention a new PostgreSQL connection) never looks at it again:
    after a database restart every dispatch would fail on the dead one. One ``SELECT 1``
    on a connection already open, none otherwise.
    """
    for connection in connections.all(initialized_only=True):
        open_here = connection.connection is not None and not connection.in_atomic_block
        if open_here and not connection.is_usable():
            logger.warning(
                "the database connection %r was broken; opening another", connection.alias
            )
            connection.close()


def hand_to_worker(run_id: str) -> bool:
    """Send the run id to the relay worker's intake channel; False if that failed.

    Call it from sync code only (it blocks on the channel layer). A process's
    hand-offs share one Redis connection (:mod:`relaybridge.sync_sends`).
    """
    try:
        send_from_sync(
            DEFAULT_CHANNEL_LAYER, relay_settings.OUTBOUND_CHANNEL, dispatch_message(run_id)
        )
    except LayerMissing:
        logger.error("no channel layer is configured; run %s waits for the sweep", run_id)
        return False
    except Exception:
        logger.exception("the channel layer refused run %s; it waits for the sweep", run_id)
        return False
    return True
