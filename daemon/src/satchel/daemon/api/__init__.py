"""The method registry: how a `Request` finds its handler, and how the outcome becomes a reply.

A feature area is one module here that registers handlers by name::

    @method("cache.info", CacheInfoParams)
    async def cache_info(ctx: RequestContext, params: CacheInfoParams) -> CacheInfoResult: ...

and one line in `MODULES`. The dispatcher owns every translation between the wire and Python,
so handlers never see raw dicts or build `Error` messages:

- params: ``msgspec.convert`` into the declared Struct; a mismatch is ``invalid-params`` whose
  message names the field (``Expected `int`, got `str` - at `$.seconds```);
- unknown names: ``unknown-method``;
- `SatchelError` (and subclasses): its own code, message and details;
- an SQLite "malformed"/"not a database" error: ``database-damaged``, saying how to recover
  (a restart moves the database aside and rebuilds it, `satchel.daemon.indexes.dbrecovery`);
- any other exception: ``internal`` with a short message; the traceback goes to the log only
  (it may name paths or values the client has no business seeing);
- cancellation (a client `Cancel` or disconnect) arrives as trio cancellation and is not caught
  here: the server decides what to tell the client.
"""

from __future__ import annotations

import importlib
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import trio

from satchel.daemon.errors import DatabaseDamaged, SatchelError
from satchel.protocol import errors as codes
from satchel.protocol.messages import Error, Log, Progress, Request, Result

if TYPE_CHECKING:
    from satchel.daemon.services.daemon import App

__all__ = [
    "MODULES",
    "TEST_MODULES",
    "Handler",
    "Method",
    "RequestContext",
    "dispatch",
    "load_methods",
    "method",
    "registry",
]

log = logging.getLogger(__name__)

#: SQLITE_CORRUPT and SQLITE_NOTADB: the database file itself is damaged (not busy, not full).
_DAMAGED = frozenset({11, 26})

#: Feature modules imported at start-up, each registering its methods. Add one line per area.
MODULES = ["core", "cache", "resolve", "install", "indexes", "origins", "watch", "localindex"]

#: Modules loaded only when ``SATCHEL_TEST_METHODS=1`` (slow/failing methods for the test suite;
#: never reachable in a normal daemon).
TEST_MODULES = ["debug"]
TEST_METHODS_ENV = "SATCHEL_TEST_METHODS"

P = TypeVar("P", bound=msgspec.Struct)
Handler = Callable[["RequestContext", Any], Awaitable[msgspec.Struct | dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    params_type: type[msgspec.Struct]
    handler: Handler


_REGISTRY: dict[str, Method] = {}


def registry() -> dict[str, Method]:
    """The registered methods by name (read-only use, please)."""
    return _REGISTRY


def method(
    name: str, params_type: type[P]
) -> Callable[
    [Callable[[RequestContext, P], Awaitable[Any]]],
    Callable[[RequestContext, P], Awaitable[Any]],
]:
    """Register the decorated coroutine function as the handler of method *name*."""

    def register(
        func: Callable[[RequestContext, P], Awaitable[Any]],
    ) -> Callable[[RequestContext, P], Awaitable[Any]]:
        if name in _REGISTRY:
            raise RuntimeError(f"method {name!r} registered twice")
        _REGISTRY[name] = Method(name, params_type, func)
        return func

    return register


def load_methods() -> dict[str, Method]:
    """Import every feature module (idempotent) and return the registry."""
    names = list(MODULES)
    if os.environ.get(TEST_METHODS_ENV) == "1":
        names += TEST_MODULES
    for module in names:
        importlib.import_module(f"{__name__}.{module}")
    return _REGISTRY


#: How a handler's events reach its caller (`process._server`'s `send_event`).
Sender = Callable[[Progress | Log], Awaitable[None]]


class RequestContext:
    """What a handler gets besides its params: the daemon and a way to talk to its caller."""

    __slots__ = ("_send", "app", "churned", "method", "protocol", "request_id")

    def __init__(
        self, app: App, request_id: int, method: str, send: Sender, protocol: str = ""
    ) -> None:
        self.app = app
        self.request_id = request_id
        self.method = method
        #: The protocol version negotiated on the caller's connection ("1.0").
        self.protocol = protocol
        #: Whether the work may have churned the heap (the server then gives the memory it
        #: freed back to the system, for the methods of `GIVE_BACK_AFTER`); a handler that
        #: built next to nothing (a resolve answered from the result cache) clears it.
        self.churned = True
        self._send = send

    async def progress(
        self, done: int, total: int | None = None, unit: str = "", message: str = ""
    ) -> None:
        """Stream a progress event to the caller (dropped silently if it has gone)."""
        await self._send(Progress(self.request_id, done, total, unit, message))

    async def log(self, level: str, message: str) -> None:
        """Show the caller a line (``level`` as in logging: "info", "warning", ...)."""
        await self._send(Log(self.request_id, level, message))


async def dispatch(ctx: RequestContext, request: Request) -> Result | Error:
    """Run *request*'s handler and return the terminal message for it."""
    entry = _REGISTRY.get(request.method)
    if entry is None:
        return Error(
            request.id,
            codes.UNKNOWN_METHOD,
            f"unknown method {request.method!r}",
            {"method": request.method},
        )
    try:
        params = msgspec.convert(request.params, entry.params_type)
    except msgspec.ValidationError as exc:
        return Error(
            request.id,
            codes.INVALID_PARAMS,
            f"invalid params for {request.method}: {exc}",
            {"method": request.method},
        )
    try:
        try:
            value = await entry.handler(ctx, params)
        finally:  # an answer, whatever it says, goes out with the bindings it relied on durable
            if (runtime := ctx.app.services.runtime) is not None:
                # Shielded: a Cancel arriving after the handler finished must not turn its
                # answer (an install that committed) into "cancelled"; one sync is bounded.
                with trio.CancelScope(shield=True):
                    await runtime.catalog.origins.durable_before_answer()
    except SatchelError as exc:
        return Error(request.id, exc.code, exc.message, exc.details)
    except Exception as exc:
        if isinstance(exc, sqlite3.DatabaseError) and exc.sqlite_errorcode in _DAMAGED:
            log.error("%s: the cache database is damaged: %s", request.method, exc)  # noqa: TRY400
            damaged = DatabaseDamaged(
                f"the cache database is damaged ({exc}); restart the daemon (`satchel stop`) "
                "to move it aside and rebuild it from the stored files",
                details={"method": request.method},
            )
            return Error(request.id, damaged.code, damaged.message, damaged.details)
        log.exception("method %s (request %d) failed", request.method, request.id)
        return Error(
            request.id,
            codes.INTERNAL,
            f"internal error in {request.method}; see the daemon log",
            {"method": request.method},
        )
    return Result(request.id, value)
