"""config.toml, live: the running daemon's configuration follows each good edit of the file.

`LiveConfig` holds the last good configuration and the error of the last broken edit (with its
file and line, for ``satchel status``): a broken edit never takes the daemon's indexes away.
Parsing and validation are `satchel.daemon.settings.config`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from satchel.daemon.errors import ConfigError
from satchel.daemon.settings.config import Config, OwnCheck, config_exists, load_config
from satchel.daemon.storage.fsutil import atomic_write

__all__ = ["LiveConfig", "watch_config"]

_log = logging.getLogger(__name__)

#: When the OS refuses a watch (out of descriptors or inotify watches), the next attempt comes
#: after this, doubling up to the maximum: descriptors usually come back within a second, and a
#: minute between attempts keeps a machine that stays out of them from a busy loop.
WATCH_RETRY_FIRST = 1.0
WATCH_RETRY_MAX = 60.0


class LiveConfig:
    """The current configuration of a running daemon, and the error of the last broken edit.

    `config` is always a valid configuration: a broken edit leaves it unchanged and sets `error`
    (a `ConfigError` with file and line) until a later edit fixes the file. A file that is already
    broken at start gives the empty configuration with `error` set and `usable` False: there is
    no last good configuration, and the runtime refuses work that needs an index until the file
    is fixed. A file removed while the daemon runs is an error too (the last good configuration
    stays): the index set changes only by an edit the user makes, never by a file going away.
    """

    def __init__(
        self,
        path: Path,
        *,
        on_error: Callable[[ConfigError], None] | None = None,
        own: OwnCheck | None = None,
        marker: Path | None = None,
    ) -> None:
        self.path = path
        self.marker = marker
        #: Whether a config.toml was in use before (by this daemon or an earlier one).
        self.decided = marker is not None and marker.exists()
        #: Recognises Satchel's own local index (refused as an index: `parse_config`).
        self.own = own
        self.error: ConfigError | None = None
        self.config: Config = Config()
        #: Whether `config` came from the file (False: broken or missing since start).
        self.usable = False
        self._on_error = on_error
        self._first_wakeup = True
        self.reload()

    def reload(self) -> bool:
        """Re-read the file; True when the configuration changed or a previous error cleared.

        (A fixed file that restores the last good configuration is still news: whoever shows
        the error must learn it is gone.)
        """
        had_error = self.error is not None
        try:
            config = self._read()
        except ConfigError as exc:
            if self.error is None or str(exc) != str(self.error):
                _log.error("keeping the last good configuration: %s", exc)
            self.error = exc
            if self._on_error is not None:
                self._on_error(exc)
            return False
        self.error = None
        changed = config != self.config or had_error or not self.usable
        self.config = config
        self.usable = config_exists(self.path)
        if self.usable and self._in_use_before() != str(self.path):
            self._mark_decided()
        return changed

    def _in_use_before(self) -> str | None:
        """The config.toml path the marker records (empty from an older version: None)."""
        if self.marker is None:
            return None
        try:
            return self.marker.read_text("utf-8", "replace").strip() or None
        except OSError:
            return None

    def _mark_decided(self) -> None:
        """Record that a config.toml is in use, and which: a daemon started later from an
        environment that looks elsewhere (another XDG_CONFIG_HOME) can then name it."""
        self.decided = True
        if self.marker is None:
            return
        try:
            atomic_write(self.marker, f"{self.path}\n".encode())
        except OSError as exc:
            _log.warning("cannot record that %s is in use: %s", self.path, exc)

    def _read(self) -> Config:
        if config_exists(self.path):
            return load_config(self.path, own=self.own)
        if self.usable:
            raise ConfigError(
                f"{self.path}: the file was removed; the indexes it listed stay in use until "
                "it is back. A daemon started without it uses no index (pip's and uv's are "
                "adopted only at the first start): restore it, or run `satchel index adopt`",
                details={"path": str(self.path), "line": None},
            )
        before = self._in_use_before()
        if self.decided and before is not None and before != str(self.path):
            raise ConfigError(
                f"{self.path}: the file is missing; the config.toml in use before is {before}. "
                "This daemon was started with another XDG_CONFIG_HOME (or HOME) than the "
                "shell that set Satchel up (a service, cron, an IDE?): start it with "
                f"XDG_CONFIG_HOME={Path(before).parent.parent} (for the service: `systemctl "
                f"--user set-environment XDG_CONFIG_HOME={Path(before).parent.parent}`), or "
                "move the file here",
                details={"path": str(self.path), "line": None, "in_use_before": before},
            )
        if self.decided:
            raise ConfigError(
                f"{self.path}: the file is missing, but one was in use before (removed, or "
                "an editor's save under way?); pip's and uv's indexes are adopted only at the "
                "first start. Restore the file, or run `satchel index adopt` to adopt the "
                "indexes pip and uv name in your shell",
                details={"path": str(self.path), "line": None},
            )
        return load_config(self.path, own=self.own)

    async def watch(
        self,
        on_change: Callable[[Config], Awaitable[None] | None] | None = None,
        *,
        debounce_ms: int = 100,
        task_status: trio.TaskStatus[LiveConfig] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Reload on every change of the file until cancelled; call *on_change* with new configs.

        ``await nursery.start(live.watch)`` returns at once (see the comment below). The parent
        directory is watched, not the file: editors and `save_config` replace the file by renaming,
        which a watch on the old inode would miss.
        """
        import watchfiles

        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        link = str(self.path.absolute())

        def only_config(_change: watchfiles.Change, changed: str) -> bool:
            # realpath, not Path.resolve: a link loop (config.toml -> config.toml) is a file
            # that cannot be read (`load_config` says so), not a RuntimeError that ends the daemon.
            return changed == link or os.path.realpath(changed) == os.path.realpath(self.path)

        # Started at once, so the daemon's start-up never waits for the OS watch. An edit made
        # before the watch is registered is not lost: the first wake-up (an event, or the poll
        # timeout) reloads unconditionally.
        task_status.started(self)
        delay = WATCH_RETRY_FIRST
        while True:
            self._first_wakeup = True
            watched = self._directories()
            retarget = False
            watcher = watchfiles.awatch(
                *sorted(watched),
                watch_filter=only_config,
                debounce=debounce_ms,
                step=20,
                recursive=False,
                yield_on_timeout=True,
                rust_timeout=200,
            )
            async with contextlib.aclosing(watcher):
                while True:
                    try:
                        changes = await anext(watcher)
                    except Exception as exc:
                        # No watch (out of descriptors or inotify watches; watchfiles' own
                        # errors are not OSError): the daemon keeps its configuration and tries
                        # again, and the next watch's first wake-up reloads the file, so an
                        # edit made meanwhile is not lost.
                        _log.warning(
                            "cannot watch %s (%s); retrying in %g s", self.path, exc, delay
                        )
                        break
                    delay = WATCH_RETRY_FIRST
                    await self._changed(bool(changes), on_change)
                    # On every wake-up, the poll's included: the link may point elsewhere now,
                    # or into a directory that went away or came back (a watch on a removed
                    # directory sees nothing of the one made in its place). A few stats.
                    if self._directories() != watched:
                        retarget = True
                        break
            if retarget:
                continue  # the new watch's first wake-up reloads: nothing is lost meanwhile
            await trio.sleep(delay)
            delay = min(delay * 2, WATCH_RETRY_MAX)

    def _directories(self) -> frozenset[Path]:
        """The directories to watch: config.toml's, and where it points when it is a symlink
        (a dotfiles repository: edits happen there), when that directory exists."""
        pointed = Path(os.path.realpath(self.path)).parent  # as in `only_config`: loops too
        if pointed.is_dir():
            return frozenset({self.path.parent, pointed})
        return frozenset({self.path.parent})

    async def _changed(
        self, changed: bool, on_change: Callable[[Config], Awaitable[None] | None] | None
    ) -> None:
        """One wake-up of the watch (*changed*: the file was touched; else a poll timeout). The
        first wake-up of a new watch reloads anyway: an edit made before it was in place is not
        lost. A reload that changed the configuration calls *on_change*."""
        first, self._first_wakeup = self._first_wakeup, False
        if not changed and not first:
            return
        if self.reload() and on_change is not None:
            result = on_change(self.config)
            if result is not None:
                await result


async def watch_config(
    path: Path,
    on_change: Callable[[Config], Awaitable[None] | None],
    *,
    on_error: Callable[[ConfigError], None] | None = None,
    task_status: trio.TaskStatus[LiveConfig] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Watch *path* forever: *on_change* gets each new valid config, *on_error* each broken edit.

    Started with ``await nursery.start(watch_config, path, on_change)`` it returns the
    `LiveConfig`, whose `config` is the last good configuration and whose `error` the status
    method shows.
    """
    live = LiveConfig(path, on_error=on_error)
    await live.watch(on_change, task_status=task_status)
