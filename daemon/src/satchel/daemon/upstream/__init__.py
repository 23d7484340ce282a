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
