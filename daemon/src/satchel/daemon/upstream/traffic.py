"""What one request fetched from its indexes while resolving, counted truthfully and shown live.

A resolve reads core metadata: from the cache (free), as a PEP 658 file, by range requests into
the wheel (`satchel.daemon.upstream.remotezip`), or, where the server serves no ranges, by
downloading the
whole wheel (which is then stored: its sha256 is known). The last one is a download and is
counted as one, so a prefetch on a fresh cache no longer says "0 downloaded" after pulling every
wheel during its resolve (issue 13.7); the others are metadata requests.

A `Traffic` belongs to one request's session. When the request streams progress, every metadata
read from the network is reported as it ends, as ``metadata 12/31 (range requests)``: *31* is
the reads started so far (a resolver discovers its work as it goes, so there is no total to
announce in advance).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["PEP658", "RANGES", "WHOLE", "Progress", "Traffic"]

#: ``progress(done, total_or_None, unit, message)``, as `RequestContext.progress`.
Progress = Callable[[int, int | None, str, str], Awaitable[None]]

#: How a metadata read went, as the progress message names it.
RANGES = "range requests"
PEP658 = "PEP 658 files"
WHOLE = "whole files"


@dataclass
class Traffic:
    """Counters of one request; `progress` (when set) is told of every metadata read."""

    progress: Progress | None = None
    #: Whole files downloaded (and stored) to read their metadata, and their bytes.
    downloaded: int = 0
    downloaded_bytes: int = 0
    #: sha256 of every file so downloaded (a prefetch does not count them as cached).
    downloaded_shas: set[str] = field(default_factory=set)
    #: HTTP requests for metadata (PEP 658 files, range requests) and their body bytes.
    metadata_requests: int = 0
    metadata_bytes: int = 0
    #: Metadata reads from the network: started, finished, and how each finished.
    started: int = 0
    finished: int = 0
    ways: dict[str, int] = field(default_factory=dict)

    def begin(self) -> None:
        """A read starts: counted, reported with the next end (one line per read in a log)."""
        self.started += 1

    async def end(self, how: str | None) -> None:
        """A read ended (*how* None: it failed)."""
        self.finished += 1
        if how is not None:
            self.ways[how] = self.ways.get(how, 0) + 1
        await self._report()

    def count_download(self, sha256: str, size: int) -> None:
        if sha256 not in self.downloaded_shas:
            self.downloaded_shas.add(sha256)
            self.downloaded += 1
            self.downloaded_bytes += size

    def count_metadata(self, requests: int, received: int) -> None:
        self.metadata_requests += requests
        self.metadata_bytes += received

    def describe(self) -> str:
        """``metadata 12/31 (range requests, 2 whole files)``."""
        ways = ", ".join(
            how if count == self.finished else f"{count} {how}" for how, count in self.ways.items()
        )
        return f"metadata {self.finished}/{self.started}" + (f" ({ways})" if ways else "")

    async def _report(self) -> None:
        if self.progress is not None:  # dropped silently once the caller has gone
            await self.progress(0, None, "", self.describe())
