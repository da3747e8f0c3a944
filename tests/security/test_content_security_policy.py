"""What a strict Content-Security-Policy forbids, kept out of the pages' sources.

The browser test (tests/e2e/test_browser.py) proves the pages work under the example
project's policy; these checks name the offending file and line at once, and cover
markup the browser test does not render (every template, every page script).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from project.csp import HEADER, content_security_policy, policy_for

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "relaybridge" / "templates", ROOT / "templates"]
SCRIPTS = sorted((ROOT / "relaybridge" / "static" / "relaybridge").glob("*.js"))

#: What style-src/script-src without 'unsafe-inline'/'unsafe-eval' blocks in markup.
MARKUP_RULES = {
    "a style attribute": re.compile(r"\sstyle\s*=", re.I),
    "a <style> element": re.compile(r"<style[\s>]", re.I),
    "an inline event handler": re.compile(r"\son[a-z]+\s*=\s*[\"']", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
    "an inline <script>": re.compile(
        r"<script(?![^>]*\ssrc=)(?![^>]*application/json)[^>]*>", re.I
    ),
}
#: What the scripts must not do: eval, strings run as code, style attributes written
#: as markup (element.style writes go through the CSSOM, which the policy allows, but
#: the scripts have no need of them either).
SCRIPT_RULES = {
    "eval": re.compile(r"\beval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\b"),
    "a string timer": re.compile(r"\bset(?:Timeout|Interval)\s*\(\s*[\"'`]"),
    "an element style write": re.compile(r"\.style\b|setAttribute\(\s*[\"']style"),
    "a style attribute in markup": re.compile(r"style\s*=", re.I),
    "an inline event handler in markup": re.compile(r"\son[a-z]+\s*=\s*\\?[\"']", re.I),
}


def _templates() -> list[Path]:
    return sorted(path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html"))


def _offences(path: Path, rules: dict[str, re.Pattern[str]]) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for what, pattern in rules.items():
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    return found


def test_the_templates_hold_no_inline_script_style_or_handler() -> None:
    templates = _templates()
    assert len(templates) >= 10, templates
    offences = [offence for path in templates for offence in _offences(path, MARKUP_RULES)]
    assert offences == [], "\n".join(offences)


def test_the_page_scripts_run_no_strings_and_write_no_styles() -> None:
    assert {path.name for path in SCRIPTS} >= {"stream.js", "mentions.js"}
    offences = [offence for path in SCRIPTS for offence in _offences(path, SCRIPT_RULES)]
    assert offences == [], "\n".join(offences)


@pytest.mark.parametrize(
    "line",
    [
        '<p style="margin: 0">',
        "<style>p { margin: 0 }</style>",
        '<button onclick="go()">',
        "<script>go()</script>",
        '<script type="module">go()</script>',
    ],
)
def test_the_markup_rules_catch_what_the_policy_blocks(line: str) -> None:
    assert any(rule.search(line) for rule in MARKUP_RULES.values()), line


@pytest.mark.parametrize(
    "line",
    [
        '<script src="/static/relaybridge/stream.js" defer></script>',
        '<script id="x" type="application/json">{}</script>',
        '<link rel="stylesheet" href="/static/tasks/site.css">',
        '<div data-relaybridge-thread="t" hidden>',
    ],
)
def test_the_markup_rules_let_through_what_the_policy_allows(line: str) -> None:
    assert not any(rule.search(line) for rule in MARKUP_RULES.values()), line


# --- the example project's middleware ---------------------------------------------------


def _directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in policy.split(";")}


@pytest.mark.parametrize(("secure", "scheme"), [(False, "ws"), (True, "wss")])
def test_the_policy_lets_the_page_connect_only_to_its_own_host(secure: bool, scheme: str) -> None:
    request = RequestFactory().get("/", HTTP_HOST="localhost:8123", secure=secure)
    directives = _directives(policy_for(request))
    assert directives["connect-src"] == f"connect-src 'self' {scheme}://localhost:8123"
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self'"
    assert directives["default-src"] == "default-src 'self'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe" not in policy_for(request)


def test_a_host_outside_allowed_hosts_gets_self_alone() -> None:
    request = RequestFactory().get("/", HTTP_HOST="evil.example")
    assert _directives(policy_for(request))["connect-src"] == "connect-src 'self'"


def test_the_middleware_sends_the_policy_and_keeps_a_view_s_own() -> None:
    own = HttpResponse()
    own[HEADER] = "default-src 'none'"
    for response, expected in ((HttpResponse(), None), (own, "default-src 'none'")):
        request = RequestFactory().get("/", HTTP_HOST="localhost")

        def view(request: HttpRequest, response: HttpResponse = response) -> HttpResponse:
            return response

        assert content_security_policy(view)(request)[HEADER] == (expected or policy_for(request))


async def test_the_middleware_works_in_an_async_stack() -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    middleware = content_security_policy(view)
    sent = await middleware(RequestFactory().get("/", HTTP_HOST="localhost"))
    assert "script-src 'self'" in sent[HEADER]


@pytest.mark.django_db
def test_the_example_project_sends_the_policy(client: object) -> None:
    from django.test import Client

    assert isinstance(client, Client)
    response = client.get("/accounts/login/", HTTP_HOST="localhost")
    assert response.status_code == 200
    assert response[HEADER] == policy_for(response.wsgi_request)
