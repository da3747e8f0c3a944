"""A host adapter that lets only staff watch threads, for the permission tests."""

from __future__ import annotations

from typing import Any

from relaybridge.adapters import DefaultCommentAdapter


class StaffOnlyAdapter(DefaultCommentAdapter):
    def can_view(self, user: Any, thread: Any) -> bool:
        return bool(user.is_authenticated and user.is_active and user.is_staff)
