"""Counting worker-thread hand-offs: what a test wants to be one hop, or none."""

from __future__ import annotations

from typing import Any

import pytest
import trio

__all__ = ["count_hops"]


def count_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on (undone with *monkeypatch*), the name of every function handed to a worker
    thread with `trio.to_thread.run_sync`, in order."""
    seen: list[str] = []
    run_sync = trio.to_thread.run_sync

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counted)
    return seen
