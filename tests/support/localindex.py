"""A local index running in-process for tests: the daemon's runtime against loopback upstreams.

`local_index(tmp_path)` starts the runtime (cache, config, upstream, catalog and the local index
on an ephemeral port) with one `IndexServer` upstream ("up") holding real wheels: alpha 1.0 and
2.0 (2.0 requires Python >= 3.8), both depending on beta 0.5. `two_indexes(tmp_path)` configures
"private" (internal-tool 1.0) before "public" (a look-alike internal-tool 9.9). Both yield a
`Local`: the app, the upstream, the base URL, the token and an authenticated httpx client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from satchel.daemon.localindex import local_index_state
from satchel.daemon.process.app import run_runtime
from satchel.daemon.services.daemon import App, runtime
from tests.support.daemon import in_process_app
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

__all__ = ["Local", "local_index", "two_indexes", "write_config"]


@dataclass
class Local:
    app: App
    index: IndexServer
    base: str
    token: str
    client: httpx.AsyncClient
    dist: Path

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return await self.client.get(self.base + path, headers=headers)


def write_config(tmp_path: Path, index_url: str, extra: str = "") -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text(
        f'[[index]]\nname = "up"\nurl = "{index_url}"\n\n[settings]\nlocal-index-port = 0\n{extra}'
    )


@contextlib.asynccontextmanager
async def local_index(tmp_path: Path) -> AsyncIterator[Local]:
    dist = tmp_path / "dist"
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(dist, "alpha", "1.0", requires=["beta"]))
        index.add(build_wheel(dist, "alpha", "2.0", requires=["beta"], requires_python=">=3.8"))
        index.add(build_wheel(dist, "beta", "0.5"))
        write_config(tmp_path, index.url)
        app = in_process_app(tmp_path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_runtime, app)
            await runtime(app)
            state = local_index_state(app)
            assert state.state == "serving", state.error
            assert state.token is not None
            auth = httpx.BasicAuth("satchel", state.token)
            async with httpx.AsyncClient(auth=auth, timeout=10) as client:
                yield Local(app, index, f"http://127.0.0.1:{state.port}", state.token, client, dist)
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def two_indexes(tmp_path: Path, extra: str = "") -> AsyncIterator[tuple[Local, IndexServer]]:
    """'private' (first) serves internal-tool 1.0; 'public' serves a look-alike 9.9."""
    dist = tmp_path / "dist"
    with IndexServer(tmp_path / "private") as private, IndexServer(tmp_path / "public") as public:
        private.add(build_wheel(dist / "private", "internal-tool", "1.0"))
        public.add(build_wheel(dist / "public", "internal-tool", "9.9"))
        config_dir = tmp_path / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "config.toml").write_text(
            f'[[index]]\nname = "private"\nurl = "{private.url}"\n\n'
            f'[[index]]\nname = "public"\nurl = "{public.url}"\n\n'
            f"{extra}[settings]\nlocal-index-port = 0\n"
        )
        app = in_process_app(tmp_path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_runtime, app)
            await runtime(app)
            state = local_index_state(app)
            assert state.token is not None
            auth = httpx.BasicAuth("satchel", state.token)
            async with httpx.AsyncClient(auth=auth, timeout=10) as client:
                base = f"http://127.0.0.1:{state.port}"
                yield Local(app, private, base, state.token, client, dist), public
            nursery.cancel_scope.cancel()
