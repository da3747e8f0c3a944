"""A tiny object-permission backend for the admission tests.

It grants a permission on one object only, the way django-guardian does: the user
has no global permission, and ``has_perm(perm, obj)`` says yes for the objects in
:data:`GRANTS`.
"""

from __future__ import annotations

from typing import Any

#: (user pk, permission, model label, object pk) granted.
GRANTS: set[tuple[Any, str, str, Any]] = set()


class ObjectPermissionBackend:
    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if obj is None or not getattr(user_obj, "is_active", False):
            return False
        return (user_obj.pk, perm, obj._meta.label_lower, obj.pk) in GRANTS
