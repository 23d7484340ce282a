"""What is kept on disk, and how it is kept safe.

`store` (sha256-addressed blobs), `metadb` (SQLite: pages, metadata, provenance, built wheels,
state), `_pagerows` (how a page is kept in it), `_schema` (its migrations), `provenance`
(per-blob origin records beside the blobs), `model` (page structs), `digests`, `fsutil`
(durable writes), `singleflight`, `memory` (the allocator, malloc arenas, giving memory back
after a burst).

The bottom layer: it imports only `satchel.daemon.errors`.
"""
