"""What the user configured, and the secrets that come with it.

`config` (config.toml: parse, validate, render), `liveconfig` (the file followed live),
`toolsettings` (pip's and uv's index settings, read for adoption and drift), `indexset` (adoption
once into config.toml, ``index adopt``, drift), `uvproject` (a uv project's own indexes and pins),
`credentials` (sources and redaction), `credbinding` (a credential held to its first origin),
`ownindex` (the local index's port and token files), `log` (logging to stderr, redacted).

Imports the resolver (requirement files) and below; never upstream or anything above.
"""
