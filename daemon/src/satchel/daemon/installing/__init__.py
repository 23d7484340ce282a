"""Wheels into environments: validate, unpack once, link, journal, undo.

`wheelfile` (validate an archive), `_manifest` (what an install needs from it), `wheel` (unpack
once into the cache), `treecheck` (unpacked trees checked against their stamps and RECORD),
`installer` (plan, commit, undo), `_placement` (directories made, each file checked against
its stamp and linked, wheels over a few threads), `journal` (undo records in the daemon's own
directory), `_layout` (schemes, reserved names, the environment lock), `linking`, `_scripts`,
`_removal`, `_bytecode`, `venv`, `childenv` (the scrubbed environment of every child that may run
index code).

Imports storage only; never anything that knows of indexes or requests.
"""
