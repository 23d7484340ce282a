"""One job per kind of request, over the `runtime.Runtime` (store, metadb, upstream, catalog,
configuration) that start-up builds once.

`resolution` (inputs, target, resolve, fetch the files), `environments` (install into a venv),
`tools` (cached tool environments for ``run``), `builder` (PEP 517 builds of sdists), `buildenv`
(a build's own requirements, resolved and installed), `readiness` (``ready`` and watched
prefetches), `watch` (watched-project records and their inputs), `gc`.

Imports indexes and below; never services, the local index, the API or the process.
"""
