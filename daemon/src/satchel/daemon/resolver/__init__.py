"""Requirements to pinned files: pure and synchronous, behind the `provider.MetadataSource` seam.

`resolve` (requirements to pins: the entry point), `provider` (resolvelib's provider),
`_fastpath` (a conflict-free resolve in linear time, resolvelib's own choices), `_resolvelib`
(its result builder made safe from cycles), `candidates` (the file chosen per version, metadata
parsing), `_explain` (conflict messages), `target` (interpreters, tags, markers), `scope` (which
indexes a project may come from), `buildpolicy` (``--no-build``, ``--only-binary``),
`coremetadata` (METADATA of a stored file), `reqfiles`, `pylock` (PEP 751), `uvlock` (uv.lock
in).

Imports installing (the child environment of an interpreter it describes) and storage; never
settings, upstream or anything above. It runs in worker threads and never touches trio.
"""
