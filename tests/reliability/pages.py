"""A signed-in person's HTTP session against Daphne: sign in, press Stop."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from typing import Any


class PageSession:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def _csrf(self) -> str:
        for cookie in self.cookies:
            if cookie.name == "csrftoken":
                return str(cookie.value)
        raise AssertionError("no CSRF cookie")

    def sign_in(self, username: str, password: str) -> None:
        url = f"{self.base_url}/accounts/login/"
        with self.opener.open(url, timeout=10) as response:
            page = response.read().decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert found, "the sign-in page has no CSRF field"
        form = {"username": username, "password": password, "csrfmiddlewaretoken": found[1]}
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(form).encode(), headers={"Referer": url}
        )
        with self.opener.open(request, timeout=10) as response:
            assert "/accounts/login/" not in response.geturl(), "signing in failed"

    def stop(self, run_id: str) -> tuple[int, dict[str, Any]]:
        """Press Stop on a run, as the page's button does; returns the status and answer."""
        url = f"{self.base_url}/relaybridge/runs/{run_id}/stop/"
        headers = {"X-CSRFToken": self._csrf(), "Accept": "application/json", "Referer": url}
        request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
