"""The HTTP client every index request goes through: httpx, HTTP/1.1, no redirects of its own,
and no cookies.

No cookies: an index answers every request on its own (the simple API is stateless), uv keeps
none either, and a cookie one index sets has no business in the daemon's later requests. httpx
keeps a cookie jar per client all the same, and reading each response's ``Set-Cookie`` into it
built a `urllib.request.Request` per response: 5% of a cold prefetch's Python time (issue 15).
The client here has a jar that stays empty, so nothing is read into it and nothing is sent.
"""

from __future__ import annotations

import httpx

__all__ = ["http_client"]


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: a response's cookies are not even read."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the index client keeps no cookies")


def http_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A new client for the indexes: *timeout* unless a request says otherwise."""
    return _CookielessClient(
        http1=True,
        http2=False,
        timeout=timeout,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        headers={"User-Agent": "satchel"},
    )
