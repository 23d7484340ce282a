"""The daemon's long-lived parts: the daemon object every handler sees and what it keeps running.

`daemon` (the `App`: paths, jobs, activity, shutdown, and the `runtime` accessor), `paths` (where
the daemon keeps things), `state` (exit records), `fdlimit` (the open-file limit, accept
back-off), `startup` (opens the cache, adopts the index set, loads config.toml, builds the
`Runtime`, starts the front ends it is handed and the refresh), `refresh` (watched projects,
background revalidation, idle GC).

Imports requests and below. Never the API, the local index or the process: those are handed to
it (`startup.run_runtime` gets its front ends as callables).
"""
