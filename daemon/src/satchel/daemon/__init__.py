"""satcheld: the trio service that owns Satchel's cache and index metadata.

The daemon is eleven layers, one subpackage each; a request flows from the top down, and a layer
imports only the layers below it (an import-linter contract, checked by ``.ci/run``)::

    process      the satcheld process: command line, socket, connections, signals, shutdown
    api          one module per API area of the Unix-socket protocol: params in, result out
    localindex   the loopback simple index (HTTP) for pip, uv, poetry and pdm
    services     the daemon object, its directories, start-up, background refresh
    requests     one job per request kind: resolve, install, run, build, prefetch, GC
    indexes      the catalog (scoped pages, metadata, files), project origins, recovery
    upstream     talking to indexes over HTTP: pages, metadata, files, limits, breakers
    settings     config.toml, pip's and uv's settings, credentials, the log's redaction
    resolver     requirements, targets, candidates and resolvelib: pure, synchronous
    installing   wheels: validate, unpack once, install into an environment, undo
    storage      the blob store, the metadata database, provenance, durable writes

`errors` is the one module every layer shares: the whole error hierarchy. docs/architecture.md
says what each layer owns and may never import.
"""
