"""The secret scanner finds every form a token travels in, and never prints one."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

from .secrets import SecretScanner, mask, report

SECRET = "rlk_portal_Zx9+/q=k"


def kinds(text: str, scanner: SecretScanner | None = None) -> list[str]:
    return [f.kind for f in (scanner or SecretScanner([SECRET])).scan(text, "t")]


def test_the_known_secret_in_each_encoding() -> None:
    assert kinds(f"Authorization: Bearer {SECRET}") == ["known secret (as is)"]
    assert kinds(f"GET /v1/ws/app?token={quote(SECRET, safe='')}") == ["known secret (url-encoded)"]
    assert kinds(json.dumps({"t": "\u00e9" + SECRET})) == ["known secret (as is)"]
    encoded = base64.b64encode(f"{SECRET}".encode()).decode()
    assert kinds(f"cookie={encoded}") == ["known secret (base64)"]
    assert kinds("nothing to see") == []


def test_agent_token_shapes_and_their_false_friends() -> None:
    scanner = SecretScanner()
    assert kinds("pasted rla_athena_0f3a9 by mistake", scanner) == ["agent-token-shaped"]
    assert kinds("<b>rla_x-y</b>", scanner) == ["agent-token-shaped"]
    # Words that merely contain the letters, and the bare prefix, are not tokens.
    assert kinds("karla_smith, rla_ alone, Rla_x, [redacted]", scanner) == []
    assert kinds("rlk_app_123", scanner) == []
    assert kinds("rlk_app_123", SecretScanner(app_token_shapes=True)) == ["app-token-shaped"]


def test_findings_name_the_place_and_never_the_secret(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text(f"line one\nconnecting with {SECRET}\n")
    findings = SecretScanner([SECRET]).scan_file(log)
    assert [(f.source, f.line) for f in findings] == [(str(log), 2)]
    text = report(findings)
    assert SECRET not in text and mask(SECRET) in text
    assert mask(SECRET) == "rlk_p…(19 chars)"
    assert report([]) == "(none)"
