"""A signed-in HTTP session against a running Daphne, and a crawl of its pages.

Plain ``urllib`` with a cookie jar: it signs in through the real login form
(CSRF cookie and token included), posts comments through the task page's form,
and follows every same-site link it finds, so a test sees exactly the pages a
person would.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_HREF = re.compile(r'href="([^"#]*)')
#: Links a crawl never follows: they change state even on GET, or leave the site.
_NEVER_FOLLOW = ("logout", "/delete/", "/password/", "/history/")


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    body: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class WebSession:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.cookies)]
        self._follow = urllib.request.build_opener(*handlers)
        self._stay = urllib.request.build_opener(*handlers, _NoRedirects())
        #: Every page fetched so far, in order.
        self.pages: list[Page] = []

    def _absolute(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def request(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        headers: dict[str, str] | None = None,
        follow: bool = True,
    ) -> Page:
        url = self._absolute(path)
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, headers=headers or {})
        if data is not None:
            request.add_header("Referer", url)
        opener = self._follow if follow else self._stay
        try:
            with opener.open(request, timeout=30) as response:
                page = Page(response.geturl(), response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            page = Page(url, error.code, error.read().decode(errors="replace"))
        self.pages.append(page)
        return page

    def csrf_token(self, path: str) -> str:
        page = self.request(path)
        found = _CSRF_INPUT.search(page.body)
        assert found, f"no CSRF token on {path} ({page.status})"
        return found.group(1)

    def sign_in(self, username: str, password: str) -> None:
        token = self.csrf_token("/accounts/login/")
        page = self.request(
            "/accounts/login/",
            {"csrfmiddlewaretoken": token, "username": username, "password": password},
        )
        assert page.status == 200 and "/accounts/login/" not in page.url, page.body[:500]

    def post_comment(self, task_id: int, body: str) -> Page:
        path = f"/tasks/{task_id}/"
        token = self.csrf_token(path)
        return self.request(path, {"csrfmiddlewaretoken": token, "body": body})

    def crawl(self, starts: Iterable[str], limit: int = 120) -> list[Page]:
        """Every same-site page reachable from ``starts`` by GET (at most ``limit``)."""
        queue = deque(starts)
        seen: set[str] = set(queue)
        found: list[Page] = []
        while queue and len(found) < limit:
            page = self.request(queue.popleft())
            found.append(page)
            for href in _HREF.findall(page.body):
                link = urllib.parse.urljoin(page.url, href.replace("&amp;", "&"))
                if not link.startswith(self.base_url):
                    continue
                path = link[len(self.base_url) :]
                if path in seen or any(part in path for part in _NEVER_FOLLOW):
                    continue
                if path.startswith("/static/"):
                    continue
                seen.add(path)
                queue.append(path)
        return found
