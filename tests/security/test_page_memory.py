"""A huge PEP 691 JSON page, end to end: parsed off the event loop, in bounded memory (issue 11.6).

A hostile (or merely enormous) index page of 60 MB, under the daemon's 64 MiB page cap, once
held the event loop for 13 s and left the daemon at 0.5-1.8 GB resident. Here a real daemon
prefetches from a loopback index serving such a page (90,000 well-formed entries) while a
second connection pings it; then prefetches again, the index answering 304, so the stored page
is read back. Asserted, without timing anything:

* the page is parsed outside the daemon (in its child process, whose CPU time the daemon
  collects), and the event-loop (main) thread spends a small share of all that CPU time (from
  ``/proc``, which a loaded machine does not skew);
* pings are answered while each prefetch runs (how many depends on how fast the machine is:
  printed, not asserted; the event-loop thread's share of the CPU is what shows the page is
  not handled there);
* peak resident memory (``VmHWM``, reset before each prefetch) stays under `PEAK_LIMIT_MIB`
  (the issue's 200 MB), and what is kept afterwards under
  `KEPT_LIMIT_MIB` ("back near the baseline").

Ping latencies (the issue asks for a p99 under 10 ms) are printed for docs/reliability.md, not
asserted: no test here depends on timing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, rig_for
from tests.reliability.hostile_server import Handler, HostileServer, reply
from tests.support.daemon import Client
from tests.support.wheels import build_wheel

PAGE = "/simple/demo/"
WHEEL = "demo-1.0-py3-none-any.whl"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: Bound on the daemon's peak resident memory while it takes a 60 MB page: the issue's 200 MB
#: (190.7 MiB).
#: Measured 156-162 MiB, fetched or read back (503 before issue 11.6, ~255 with the parse in a
#: child process, 190-205 before `FileEntry` became compact): ~52 MiB of baseline, ~55 MiB of
#: parsed page (90,000 `FileEntry`, their repeated values shared), ~32 MiB of the resolver's
#: versions grouped from it, the rest malloc's own overhead.
PEAK_LIMIT_MIB = 190
#: What the daemon may keep once done with the page ("back near the baseline"): measured 2-11
#: MiB above it (400 before issue 11.6, 110-170 with pymalloc, whose arenas the few objects
#: that outlive the page pinned; see `satchel.daemon.storage.memory.use_system_allocator`).
KEPT_LIMIT_MIB = 40


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def _cpu_seconds(stat_path: Path, *, children: bool = False) -> float:
    """utime + stime of a process or thread (``/proc/.../stat``), in clock ticks; *children*:
    plus those of its children it has waited for (the page parser's)."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return float(ticks)


def _json_page(base: str, wheel: bytes, count: int) -> bytes:
    """A PEP 691 page shaped like a big real one: *count* older releases, then the real wheel."""
    files = []
    for i in range(count):
        name = f"demo-0.{i}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        files.append(
            {
                "core-metadata": {"sha256": f"{i:064x}"},
                "data-dist-info-metadata": {"sha256": f"{i:064x}"},
                "filename": name,
                "hashes": {"sha256": f"{i + 1:064x}"},
                "requires-python": ">=3.8",
                "size": 123456,
                "upload-time": "2024-01-01T00:00:00.000000Z",
                "url": f"{base}/files/{i:060x}/{name}",
                "yanked": False,
            }
        )
    sha = hashlib.sha256(wheel).hexdigest()
    files.append({"filename": WHEEL, "url": f"{base}/files/{WHEEL}", "hashes": {"sha256": sha}})
    doc = {"meta": {"api-version": "1.1"}, "name": "demo", "files": files}
    return json.dumps(doc).encode()


class Pinger(threading.Thread):
    """Pings the daemon on its own connection every few ms; records when each answer came."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.answered: list[tuple[float, float]] = []  # (sent, answered), monotonic
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with Client(self.path, timeout=60) as client:
            client.hello()
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    answer = client.wait_terminal(client.request("ping"), timeout=60)
                except OSError as exc:
                    self.failures.append(repr(exc))
                    return
                if answer["type"] != "result":
                    self.failures.append(str(answer))
                self.answered.append((sent, time.monotonic()))
                self.stop.wait(0.005)  # paced: the pinger must not be the load it measures


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Rig, HostileServer]]:
    with HostileServer() as server:
        for rig in rig_for(tmp_path):
            yield rig, server


@dataclass
class Taken:
    """What one prefetch of the big page cost the daemon."""

    returncode: int
    stderr: str
    seconds: float
    peak: float
    main_cpu: float
    whole_cpu: float
    children_cpu: float
    pings: list[float]  # seconds each ping answered during the prefetch took

    def p99(self) -> float:
        ordered = sorted(self.pings)
        return ordered[int(0.99 * (len(ordered) - 1))] * 1000 if ordered else float("nan")


def _take_page(satchel: Rig, pid: int) -> Taken:
    """``satchel prefetch demo`` while a `Pinger` pings; VmHWM is reset first (clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    main_thread = Path(f"/proc/{pid}/task/{pid}/stat")
    whole = Path(f"/proc/{pid}/stat")
    pinger = Pinger(str(satchel.env.socket))
    pinger.start()
    while not pinger.answered:
        time.sleep(0.01)
    main_before = _cpu_seconds(main_thread)
    whole_before = _cpu_seconds(whole, children=True)
    own_before = _cpu_seconds(whole)
    start = time.monotonic()
    result = satchel.satchel("prefetch", "demo", timeout=300)
    end = time.monotonic()
    main_cpu = _cpu_seconds(main_thread) - main_before
    whole_cpu = _cpu_seconds(whole, children=True) - whole_before
    children_cpu = whole_cpu - (_cpu_seconds(whole) - own_before)
    pinger.stop.set()
    pinger.join(60)
    assert pinger.failures == []
    return Taken(
        result.returncode,
        result.stderr,
        end - start,
        _status(pid, "VmHWM"),
        main_cpu,
        whole_cpu,
        children_cpu,
        [answered - sent for sent, answered in pinger.answered if start < sent < end],
    )


def test_60_mb_json_page_is_parsed_off_the_event_loop_in_bounded_memory(
    rig: tuple[Rig, HostileServer],
) -> None:
    """issue 11.6: a 60 MB PEP 691 page does not block the daemon nor keep its memory, when
    it is fetched and parsed, nor when the stored page is read back (a 304 revalidation)."""
    satchel, server = rig
    wheel = build_wheel(satchel.root / "dist", "demo", "1.0").read_bytes()
    body = _json_page(server.url("").rstrip("/"), wheel, 90_000)
    assert 55 * 2**20 < len(body) < 64 * 2**20
    etag = '"v1"'

    def page(handler: Handler) -> None:
        if handler.headers.get("If-None-Match") == etag:
            reply(handler, 304, ETag=etag)
        else:
            reply(handler, 200, body, Content_Type=JSON_TYPE, ETag=etag)

    server.routes[PAGE] = page
    server.routes[f"/files/{WHEEL}"] = lambda h: reply(h, 200, wheel)
    satchel.configure(server.url("/simple/"))
    pid = satchel.daemon_pid()
    satchel.ok("status")
    baseline = _status(pid, "VmRSS")

    for what in ("fetched and parsed", "read back from the cache"):
        taken = _take_page(satchel, pid)
        settled = _status(pid, "VmRSS")
        # Freed memory goes back at the settler's rounds (1, 3 and 9 s after the burst), not at
        # once: a hang guard well past the last round, not a measurement.
        deadline = time.monotonic() + 60
        while settled - baseline >= KEPT_LIMIT_MIB and time.monotonic() < deadline:
            time.sleep(0.1)  # polling /proc: there is no event to wait on
            settled = _status(pid, "VmRSS")
        print(
            f"\n60 MB JSON page ({len(body) / 2**20:.0f} MiB, 90,001 files) {what}: prefetch "
            f"exit {taken.returncode} in {taken.seconds:.1f} s; daemon RSS {baseline:.0f} MiB "
            f"before, peak {taken.peak:.0f} MiB, {settled:.0f} MiB after; CPU: event-loop "
            f"thread {taken.main_cpu:.0f} of {taken.whole_cpu:.0f} ticks "
            f"({taken.children_cpu:.0f} in the parser); "
            f"{len(taken.pings)} pings answered during it, p99 {taken.p99():.1f} ms, "
            f"max {max(taken.pings, default=float('nan')) * 1000:.1f} ms"
        )
        assert taken.returncode == 0, taken.stderr
        if what == "fetched and parsed":
            assert taken.children_cpu > 0, "the page was not parsed in a child process"
        assert taken.main_cpu < taken.whole_cpu / 4, "the page was handled on the event loop"
        assert taken.pings, "no ping was answered while the page was handled"
        assert taken.peak < PEAK_LIMIT_MIB, f"peak resident {taken.peak:.0f} MiB, {what}"
        assert settled - baseline < KEPT_LIMIT_MIB, f"{settled - baseline:.0f} MiB kept after"
    satchel.ok("ping")


@pytest.mark.parametrize(
    ("shape", "cause"),
    [
        ("deep", "nested too deeply"),
        ("many", "more than the"),
    ],
)
def test_hostile_json_page_shapes_are_clear_index_errors(
    rig: tuple[Rig, HostileServer], shape: str, cause: str
) -> None:
    """issue 11.10 (a JSON page nested 100,000 deep) and 11.6 (millions of tiny entries, which
    would decode into gigabytes): refused with index-error naming the index, project and cause."""
    satchel, server = rig
    if shape == "deep":
        body = b'{"files": [], "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    else:
        body = b'{"files": [' + b"{}," * 5_000_000 + b"{}]}"
    server.routes[PAGE] = lambda h: reply(h, 200, body, Content_Type=JSON_TYPE)
    satchel.configure(server.url("/simple/"))
    pid = satchel.daemon_pid()
    result = satchel.satchel("prefetch", "demo", "--json", timeout=120)
    print(f"\n{shape} JSON page: exit {result.returncode}: {result.stderr.strip()}")
    assert result.returncode == 1
    assert "internal" not in result.stderr and "traceback" not in result.stderr.lower()
    assert "index test: project demo:" in result.stderr and cause in result.stderr
    assert _status(pid, "VmHWM") < PEAK_LIMIT_MIB
    satchel.ok("ping")
