"""An sdist's build environment gets its build requirements: resolved through the request's own
session and installed with Satchel's installer, so build dependencies are cached like any others.

This sits above `builder`, `environments` and `resolution`: providing build requirements resolves
(which may need an sdist's metadata, built) and installs (which may need a wheel, built). The
builder reaches it through `Runtime.build_requirements`, which start-up sets to `provide`
(`satchel.daemon.services.startup`), so no module of this layer imports one above it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import trio
from packaging.requirements import InvalidRequirement, Requirement

from satchel.daemon.errors import BuildError, SatchelError
from satchel.daemon.indexes.session import Session
from satchel.daemon.installing.installer import Scheme
from satchel.daemon.requests.builder import sdist_metadata
from satchel.daemon.requests.environments import install_files
from satchel.daemon.requests.resolution import SessionSource, pinned_files
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.resolver.resolve import resolve
from satchel.daemon.resolver.target import Target

__all__ = ["provide"]

log = logging.getLogger(__name__)


async def provide(
    rt: Runtime,
    session: Session,
    target: Target,
    scheme: Scheme,
    requirements: Sequence[str],
    filename: str,
    where: str,
) -> None:
    """Resolve *requirements* for the build env and install them with Satchel's installer."""
    if not requirements:
        return
    try:
        roots = [Requirement(text) for text in requirements]
    except InvalidRequirement as exc:
        raise BuildError(f"{filename}: invalid build requirement in {where}: {exc}") from exc
    hook = functools.partial(sdist_metadata, rt, session, target)
    try:
        resolution = await trio.to_thread.run_sync(
            functools.partial(
                resolve,
                roots,
                [],
                target,
                SessionSource(session, hook),
                cache=rt.metadata_cache,
                policy=session.builds,
            )
        )
    except SatchelError as exc:
        raise BuildError(
            f"{filename}: cannot provide its build requirements ({where}: "
            f"{', '.join(requirements)}): {exc}",
            details={"file": filename, "requirements": list(requirements)},
        ) from exc
    files = pinned_files(session, resolution.pins)
    await install_files(rt, session, scheme, target, files, set())
    log.debug(
        "build env for %s: %s",
        filename,
        ", ".join(f"{p.name} {p.version}" for p in resolution.pins),
    )
