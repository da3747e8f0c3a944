"""A comment adapter whose payload takes a while to build.

``dispatch_run`` is quick with the default adapter; a Celery worker killed "while
executing" it would almost never be caught in the act. Sleeping while the payload
is built (after the run was claimed, before the payload is stored) widens exactly
the window the Celery-kill scenario aims at.
"""

from __future__ import annotations

import os
import time
from typing import Any

from relaybridge.adapters import DefaultCommentAdapter, PayloadContext

PAYLOAD_DELAY_S = float(os.environ.get("RELIABILITY_PAYLOAD_DELAY_S", "0.25"))


class SlowPayloadAdapter(DefaultCommentAdapter):
    def payload_context(self, comment: Any) -> PayloadContext:
        time.sleep(PAYLOAD_DELAY_S)
        return super().payload_context(comment)
