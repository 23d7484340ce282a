"""Issue 11 (private stays private): an index's credentials go to the index's own origin only,
end to end.

Real `satchel prefetch` against a real daemon whose one index (on 127.0.0.1) needs a password,
given in the URL's userinfo as a user would. The index is honest about its files but sends the
client elsewhere: a file link to another origin (another port of 127.0.0.1), a page that
redirects to another origin, a file that redirects to another origin. The other origin records
every ``Authorization`` header it receives: it must receive none, and the files it serves are
still fetched (hash-checked) and stored.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, rig_for
from tests.reliability.hostile_server import Handler, HostileServer, reply
from tests.support.wheels import build_wheel

USER, PASSWORD = "ci", "pw-origin-5b1e"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from rig_for(tmp_path)


def _page(project: str, links: list[tuple[str, str]]) -> bytes:
    anchors = "".join(f'<a href="{url}">{name}</a>\n' for name, url in links)
    return f"<!DOCTYPE html><html><body><h1>{project}</h1>\n{anchors}</body></html>".encode()


def test_credentials_never_reach_another_origin(rig: Rig) -> None:
    """issue 11.2/11.4: three projects on a password-protected index: `linked` lists its wheel
    on another origin, `moved`'s page redirects (302) to another origin, `bounced`'s wheel is
    on the index's origin but redirects to another origin. All three prefetch; the index saw
    the password on every request, the other origin on none."""
    wheels = {
        name: build_wheel(rig.root / "dist", name, "1.0") for name in ("linked", "moved", "bounced")
    }
    digest = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in wheels.items()}
    seen: dict[str, list[str | None]] = {"index": [], "other": []}

    def record(who: str, route: object) -> object:
        def wrapped(handler: Handler) -> None:
            seen[who].append(handler.headers.get("Authorization"))
            route(handler)  # type: ignore[operator]

        return wrapped

    def serve_file(name: str) -> object:
        return lambda h: reply(h, 200, wheels[name].read_bytes(), Content_Type="application/zip")

    with HostileServer() as other, HostileServer() as index:
        fname = {name: p.name for name, p in wheels.items()}
        other.routes.update(
            {
                f"/files/{fname['linked']}": record("other", serve_file("linked")),
                f"/files/{fname['bounced']}": record("other", serve_file("bounced")),
                f"/files/{fname['moved']}": record("other", serve_file("moved")),
                "/simple/moved/": record(
                    "other",
                    lambda h: reply(
                        h,
                        200,
                        _page(
                            "moved",
                            [
                                (
                                    fname["moved"],
                                    other.url(f"/files/{fname['moved']}#sha256={digest['moved']}"),
                                )
                            ],
                        ),
                        Content_Type="text/html",
                    ),
                ),
            }
        )
        index.routes.update(
            {
                "/simple/linked/": record(
                    "index",
                    lambda h: reply(
                        h,
                        200,
                        _page(
                            "linked",
                            [
                                (
                                    fname["linked"],
                                    other.url(
                                        f"/files/{fname['linked']}#sha256={digest['linked']}"
                                    ),
                                )
                            ],
                        ),
                        Content_Type="text/html",
                    ),
                ),
                "/simple/moved/": record(
                    "index", lambda h: reply(h, 302, Location=other.url("/simple/moved/"))
                ),
                "/simple/bounced/": record(
                    "index",
                    lambda h: reply(
                        h,
                        200,
                        _page(
                            "bounced",
                            [
                                (
                                    fname["bounced"],
                                    f"/files/{fname['bounced']}#sha256={digest['bounced']}",
                                )
                            ],
                        ),
                        Content_Type="text/html",
                    ),
                ),
                f"/files/{fname['bounced']}": record(
                    "index",
                    lambda h: reply(h, 302, Location=other.url(f"/files/{fname['bounced']}")),
                ),
            }
        )
        url = index.url("/simple/").replace("http://", f"http://{USER}:{PASSWORD}@")
        rig.configure(url)
        for project in ("linked", "moved", "bounced"):
            result = rig.satchel("prefetch", project)
            print(f"{project}: exit {result.returncode}\n{result.stderr}")
            assert result.returncode == 0, result.stderr
        assert seen["index"] and all(value == BASIC for value in seen["index"]), seen["index"]
        assert seen["other"], "the other origin was never asked: the scenario did not run"
        assert seen["other"] == [None] * len(seen["other"]), f"credentials sent: {seen['other']}"
        assert PASSWORD not in rig.env.log_file.read_text()
