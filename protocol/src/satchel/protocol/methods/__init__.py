"""Params and result schemas of the daemon's methods, one module per API area.

The envelope (`Request(id, method, params)`, `Result(id, value)`) never changes when a method is
added: a method is a name plus a params Struct and a result Struct defined here, so client and
daemon share one definition. Like the messages, these Structs are frozen, and decoding ignores
unknown fields; fields are only ever added, with defaults. The daemon converts `params` with
``msgspec.convert(params, SomeParams)``; a client using plain dicts reads results as dicts with
the same field names.

Modules: `core` (ping, status, stop). Importing any of them imports msgspec.
"""
