"""A scanner for Relay secrets in text: the app token itself, and any token-shaped string.

``SecretScanner(known=[app_token]).scan(text, source)`` lists every place where
one of the known secrets occurs (as is, URL-encoded, JSON-escaped or in base64)
and every string shaped like an agent token (``rla_…``) — relaybridge never
receives one, so any such string that got stored, logged or rendered is a leak.
Findings name the source and line and show the match masked, so a failing test's
report does not itself repeat the secret.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

#: An agent token: ``rla_{agent_id}_{random}``; ids and the random part are word-like.
AGENT_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9])rla_[A-Za-z0-9][A-Za-z0-9_\-]*")
#: An app token: ``rlk_{app_id}_{random}``. Reported only with ``app_token_shapes=True``.
APP_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9])rlk_[A-Za-z0-9][A-Za-z0-9_\-]*")


@dataclass(frozen=True)
class Finding:
    source: str
    line: int
    kind: str
    masked: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.kind} {self.masked}"


def mask(secret: str) -> str:
    """The first five characters and the length: enough to recognise, useless to use."""
    return f"{secret[:5]}…({len(secret)} chars)"


def encodings(secret: str) -> dict[str, str]:
    """The forms a secret takes when it travels in a URL, a JSON string or base64."""
    forms = {
        "as is": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
    }
    # Keep each distinct form once: equal forms would report the same place twice.
    distinct: dict[str, str] = {}
    for name, form in forms.items():
        if form not in distinct.values():
            distinct[name] = form
    return distinct


class SecretScanner:
    def __init__(self, known: Iterable[str] = (), *, app_token_shapes: bool = False) -> None:
        self.known = [secret for secret in known if secret]
        self.shapes = [("agent-token-shaped", AGENT_TOKEN_SHAPE)]
        if app_token_shapes:
            self.shapes.append(("app-token-shaped", APP_TOKEN_SHAPE))

    def scan(self, text: str, source: str) -> list[Finding]:
        return list(self._scan(text, source))

    def _scan(self, text: str, source: str) -> Iterator[Finding]:
        for number, line in enumerate(text.splitlines() or [text], start=1):
            for secret in self.known:
                for name, form in encodings(secret).items():
                    if form in line:
                        yield Finding(source, number, f"known secret ({name})", mask(secret))
            for kind, shape in self.shapes:
                for match in shape.finditer(line):
                    yield Finding(source, number, kind, mask(match.group(0)))

    def scan_bytes(self, data: bytes, source: str) -> list[Finding]:
        return self.scan(data.decode("utf-8", errors="replace"), source)

    def scan_file(self, path: Path) -> list[Finding]:
        return self.scan_bytes(path.read_bytes(), str(path))

    def scan_files(self, paths: Iterable[Path]) -> list[Finding]:
        return [finding for path in paths for finding in self.scan_file(path)]


def report(findings: Iterable[Finding]) -> str:
    return "\n".join(str(finding) for finding in findings) or "(none)"
