"""Test-only methods, loaded only when ``SATCHEL_TEST_METHODS=1``.

They let the test suite create the situations the server must survive (a long request to cancel
or drain, a handler that fails) with the real daemon and real sockets, without waiting for a
feature that happens to be slow.
"""

from __future__ import annotations

import msgspec
import trio

from satchel.daemon.api import RequestContext, method
from satchel.daemon.errors import Busy
from satchel.daemon.services.daemon import runtime

__all__ = [
    "BlobParams",
    "BlobResult",
    "SleepParams",
    "SleepResult",
    "blob",
    "fail",
    "late",
    "release_late",
    "sleep",
]


class SleepParams(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float
    #: Report a Progress event every `step` seconds (0: none).
    step: float = 0.0


class SleepResult(msgspec.Struct, frozen=True):
    slept: float


class BlobParams(msgspec.Struct, frozen=True, kw_only=True):
    size: int


class BlobResult(msgspec.Struct, frozen=True):
    data: str


class FailParams(msgspec.Struct, frozen=True, kw_only=True):
    #: "satchel": a SatchelError (`Busy`, code "busy"), anything else: an unexpected RuntimeError.
    kind: str = "internal"


@method("debug.sleep", SleepParams)
async def sleep(ctx: RequestContext, params: SleepParams) -> SleepResult:
    """Sleep (cancellably), optionally streaming progress; answers how long it slept."""
    start = trio.current_time()
    if params.step > 0:
        steps = round(params.seconds / params.step)
        for done in range(steps):
            await ctx.progress(done, steps, "steps")
            await trio.sleep(params.step)
        await trio.sleep(max(0.0, params.seconds - steps * params.step))
    else:
        await trio.sleep(params.seconds)
    return SleepResult(slept=trio.current_time() - start)


@method("debug.blob", BlobParams)
async def blob(ctx: RequestContext, params: BlobParams) -> BlobResult:
    """An answer of *size* bytes (at most 8 MiB), to test how answers nobody reads are held."""
    return BlobResult(data="x" * max(0, min(params.size, 8 * 2**20)))


@method("debug.fail", FailParams)
async def fail(ctx: RequestContext, params: FailParams) -> None:
    """Raise the requested kind of error, to test how failures reach the client."""
    if params.kind == "satchel":
        raise Busy("debug failure requested", details={"kind": params.kind})
    raise RuntimeError("secret internal detail that must stay in the log")


class NoParams(msgspec.Struct, frozen=True):
    pass


#: `debug.late`'s reporters, waiting for `debug.release_late`: (go, sent) each.
_late: list[tuple[trio.Event, trio.Event]] = []


@method("debug.late", NoParams)
async def late(ctx: RequestContext, params: NoParams) -> None:
    """Answer at once, leaving work behind (in the daemon's service nursery, as a shared
    download or a look-ahead is) that reports progress for this request once
    `debug.release_late` says so: after the answer."""
    go, sent = trio.Event(), trio.Event()

    async def report() -> None:
        await go.wait()
        try:
            await ctx.progress(1, 1, "late")
        finally:
            sent.set()

    (await runtime(ctx.app, need_indexes=False)).catalog.nursery.start_soon(report)
    _late.append((go, sent))


@method("debug.release_late", NoParams)
async def release_late(ctx: RequestContext, params: NoParams) -> int:
    """Let every `debug.late` reporter send its late progress; answers how many did."""
    waiting = list(_late)
    _late.clear()
    for go, sent in waiting:
        go.set()
        await sent.wait()
    return len(waiting)
