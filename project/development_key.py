"""A secret key for development, generated once and kept in a git-ignored file.

Only the example project's settings use it, and only with ``DEBUG`` on: a
production deployment passes its own key in ``DJANGO_SECRET_KEY``. Kept in a file
(not made afresh by each process) so that sign-ins survive a restart and every
process of a development setup (Daphne, the relay worker, Celery) signs alike.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def development_secret_key(path: Path) -> str:
    """The key in ``path``, written there first (mode 0600) if the file does not exist.

    Processes starting together agree on one key: each writes its own candidate to
    a file of its own and links it into place, which only the first link does.
    """
    if not path.exists():
        candidate = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50) + "\n")
        try:
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            candidate.unlink()
    key = path.read_text().strip()
    if len(key) < 50:
        raise ValueError(f"{path} holds no usable secret key; delete it to have a new one made")
    return key
