"""What the indexes said, kept and trusted: the catalog over upstream and storage.

`catalog` (pages, core metadata and files, shared by every request), `session` (one request's
view: scoped pages online and offline), `_lookahead` (a request's likely dependencies fetched
ahead), `_offlinescope` (offline scopes kept between requests while their inputs stand),
`origins` (project -> index bindings, trust on first use), `lockorigins` (the configured index
that vouches for each locked file), `dbrecovery` (a damaged database rebuilt from the store and
the provenance records, bindings restored).

Imports upstream and below; never requests or anything above.
"""
