"""A stored file requested from the local index obeys its project's binding, as pages do.

A file URL (``/files/<sha256>/<filename>``) names bytes, and bytes already in the store need no
index to be served. But a client can hold a URL the current scope would never list: an old lock
file, a page rendered during an opted-out resolve, a hand-made request. So before a stored file
(or its ``.metadata``) is served, the index that served it (its provenance, the metadb's
``origins``) must be the index its project is pinned to, or bound to (by URL, whatever that
index is named now; `satchel.daemon.indexes.origins`). A project never bound is first looked up as
its
page would be, which binds it online, and held to that. A project left ``contested`` by a
database rebuild is refused until the user says. ``unsafe-best-match`` without a pin checks
nothing, as for pages: it is the documented opt-out.

The project is the one the URL's file name names, and the provenance must be for that project:
the file name in a URL is the client's to choose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from packaging.utils import canonicalize_name

from satchel.daemon.indexes.origins import Binding, How, index_identity
from satchel.daemon.resolver.scope import Strategy
from satchel.daemon.storage.model import Origin
from satchel.daemon.upstream.simple import file_project

if TYPE_CHECKING:
    from satchel.daemon.requests.runtime import Runtime

__all__ = ["stored_file_refusal"]


def _provenance(rt: Runtime, project: str, sha: str) -> tuple[Binding | None, list[Origin]]:
    return rt.catalog.origins.get(project), rt.metadb.origins(sha)


async def stored_file_refusal(rt: Runtime, sha: str, filename: str) -> str | None:
    """Why the stored file *sha*, asked for as *filename*, may not be served (None: it may).

    Raises what `Session.scoped_pages` raises for a project never bound (`OriginChanged`,
    `IndexUnreachable`, ...), which the caller answers as it does for pages."""
    project = file_project(filename)
    if project is None:
        return None
    session = rt.catalog.session()
    config = session.config
    pinned = next((i for p, i in config.pins.items() if canonicalize_name(p) == project), None)
    if session.strategy is Strategy.UNSAFE_BEST_MATCH and pinned is None:
        return None
    binding, origins = await trio.to_thread.run_sync(_provenance, rt, project, sha)
    allowed: set[str]
    if pinned is not None:
        allowed, wanted = {pinned}, f"pinned to index '{pinned}'"
    else:
        scoped_indexes: set[str] = set()
        if binding is None:
            scoped = await session.scoped_pages(project)  # binds it online (first use)
            scoped_indexes = {page.index for page in scoped.pages}
            binding = await trio.to_thread.run_sync(rt.catalog.origins.get, project)
        if binding is None:
            allowed = scoped_indexes
            wanted = "never bound to an index, and listed by " + (
                ", ".join(f"'{name}'" for name in sorted(allowed)) or "no index in scope"
            )
        elif binding.how is How.CONTESTED:
            allowed, wanted = set(), f"contested after a database rebuild ({binding.index})"
        else:
            allowed = {i.name for i in config.indexes if index_identity(i.url) == binding.url}
            wanted = f"bound to index '{binding.index}' ({binding.url})"
    served = sorted({o.index for o in origins if canonicalize_name(o.project) == project})
    if any(name in allowed for name in served):
        return None
    if not served:
        return (
            f"{filename}: this stored file was never served as {project} by any index, and "
            f"{project} is {wanted}. Refused: a project is never taken from another index "
            "without your word (it may be an impostor)"
        )
    urls = {i.name: index_identity(i.url) for i in config.indexes}
    came = ", ".join(f"'{name}' ({urls.get(name, 'not configured')})" for name in served)
    return (
        f"{filename}: this stored file came from index {came}, but {project} is {wanted}. "
        "Refused: a project is never taken from another index without your word (it may be an "
        "impostor). If the change is intended, accept it with "
        f"`satchel origins trust {project} {served[0]}`"
    )
