"""A host adapter with per-task access, for the permission tests.

A task belongs to the user named in its description (``owner:<username>``); only
that user (and staff) may watch it or press its buttons.
"""

from __future__ import annotations

from typing import Any

from relaybridge.adapters import DefaultCommentAdapter

OWN_TASKS = "tests.security.adapters.OwnTasksAdapter"


class OwnTasksAdapter(DefaultCommentAdapter):
    def can_view(self, user: Any, thread: Any) -> bool:
        if not (user.is_authenticated and user.is_active):
            return False
        return bool(user.is_staff) or f"owner:{user.get_username()}" in thread.description
