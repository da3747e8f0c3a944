"""What a run was asked: a digest of the question's text and a short redacted excerpt.

The digest tells an edit from any other save of the comment (the post_save receiver
compares it with the latest run's); the excerpt stays on the run when the comment
is deleted, so the ledger still says what was asked.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from .adapters import get_adapter
from .conf import redact
from .protocol.codes import ErrorCode

#: Stops no Retry undoes: the question was edited (a later revision asks the new
#: text) or deleted (see relaybridge.revisions).
FINAL_STOP_CODES: Final = frozenset({ErrorCode.EDITED.value, ErrorCode.COMMENT_DELETED.value})

#: Characters of the question kept on a run (the column's length).
EXCERPT_CHARS: Final = 200


def question_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def question_excerpt(text: str) -> str:
    # Redacted whole, then cut: a token cut in half would no longer look like one.
    return redact(text)[:EXCERPT_CHARS]


def question_fields(comment: Any) -> dict[str, str]:
    """The ``question_digest`` and ``question_excerpt`` of a run asked by ``comment``."""
    text = get_adapter().text(comment)
    return {"question_digest": question_digest(text), "question_excerpt": question_excerpt(text)}
