"""Talking to indexes over HTTP (and file://): pages, core metadata, files.

`client` (`Upstream`: httpx on trio, one per daemon), `limits` (sizes, timeouts, retries),
`_breaker` (retry budget, offline marking), `_downloads` (resumable, hash-checked streams),
`_localfiles` (file:// indexes and find-links), `simple` (PEP 503/691 parsing), `_pagebody` (a
page's body off a response, bounded, parsed off the loop), `_pageprocess` (a huge JSON page
parsed in a child process), `remotezip` (a wheel's METADATA by range requests), `traffic` (what
a request fetched, for progress).

Imports settings and below; never the catalog or anything above: it fetches, it does not decide
what to trust.
"""

import sys

#: httpx's package imports its command line (`httpx._main`: click, rich and pygments, ~95
#: modules, ~6 MiB resident and ~30 ms of the daemon's start) whenever those three are
#: installed, as they are in a development environment or one shared with pdm or
#: import-linter. The daemon never runs it, and httpx stands a stub in its place when that
#: import fails, which None in `sys.modules` makes it do. Set before any module of this package
#: imports httpx; a process that imported httpx's command line already keeps it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
