"""Console and GUI script launchers, and ``#!python`` rewriting, for POSIX environments.

The launchers are byte-for-byte what pypa/installer writes (same template, same shebang rules,
taken from distlib), so an environment installed by Satchel is indistinguishable from one
installed by the reference installer: same files, same RECORD hashes. Shebangs longer than the
kernel's historical 127-byte limit, or containing a space, use the ``/bin/sh`` trick: the file is
both a shell script that ``exec``s the interpreter on itself and a Python module whose first
statement is a harmless string.

Entry points are parsed at unpack time (so installs never run configparser) and validated:
the name becomes a file name in ``bin/`` and the module/attribute are pasted into Python source,
so both are restricted to what cannot escape the directory or inject code.
"""

from __future__ import annotations

import configparser
import re
import shlex

import msgspec

__all__ = [
    "EntryPoint",
    "build_shebang",
    "launcher",
    "parse_entry_points",
    "rewrite_shebang",
]

_TEMPLATE = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {import_name}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({func_path}())
"""

# The same grammar as pypa/installer (module, optional ":attr", optional "[extras]").
_ENTRY = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attrs>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_SAFE_NAME = re.compile(r"[^/\\\x00]+")

#: Longest script name: NAME_MAX of every common filesystem (as ``wheelfile.MAX_NAME_COMPONENT``
#: for members); a longer one fails only when the launcher is written (issue 11.10).
_MAX_NAME = 255
#: Linux before 5.1 and several BSDs truncate shebangs at 127 bytes (plus "#!" and newline).
_MAX_SHEBANG = 127


class EntryPoint(msgspec.Struct, array_like=True, frozen=True):
    """One ``console_scripts``/``gui_scripts`` entry: ``name = module:attr``."""

    name: str
    module: str
    attr: str
    gui: bool


def parse_entry_points(text: str) -> list[EntryPoint]:
    """The script entry points in an ``entry_points.txt``; ValueError names a bad one."""
    parser = configparser.ConfigParser(delimiters="=", interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(f"unparsable ({exc.__class__.__name__})") from exc
    points: list[EntryPoint] = []
    names: set[str] = set()
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            if not _SAFE_NAME.fullmatch(name) or name in (".", "..") or name.startswith("."):
                raise ValueError(f"script name {name!r} is not a plain file name")
            if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME:
                raise ValueError(f"script name {name[:40]!r}... is longer than {_MAX_NAME} bytes")
            if name in names:
                raise ValueError(f"script {name!r} is defined twice")
            names.add(name)
            match = _ENTRY.match(value)
            if match is None or match.group("attrs") is None:
                raise ValueError(f"script {name!r} has a bad target {value!r}")
            points.append(
                EntryPoint(
                    name, match.group("module"), match.group("attrs"), section == "gui_scripts"
                )
            )
    return points


def build_shebang(interpreter: str) -> bytes:
    """``#!<interpreter>``, or the ``/bin/sh`` exec trick when that line would not work."""
    raw = interpreter.encode("utf-8")
    if b" " not in raw and len(raw) + 3 <= _MAX_SHEBANG:
        return b"#!" + raw
    quoted = shlex.quote(interpreter).encode("utf-8")
    return b"#!/bin/sh\n'''exec' " + quoted + b' "$0" "$@"\n' + b"' '''"


def launcher(entry: EntryPoint, interpreter: str) -> bytes:
    """The contents of the launcher for *entry* (same bytes as pypa/installer's POSIX kind)."""
    code = _TEMPLATE.format(
        module=entry.module, import_name=entry.attr.split(".")[0], func_path=entry.attr
    )
    return build_shebang(interpreter) + b"\n" + code.encode("utf-8")


def rewrite_shebang(data: bytes, interpreter: str) -> bytes | None:
    """For a ``.data/scripts/`` file: the rewritten bytes if it starts ``#!python``, else None.

    ``#!pythonw`` and ``#!python3`` match too (as in pypa/installer and pip): the wheel spec says
    the whole first line names "the" interpreter.
    """
    if not data.startswith(b"#!python"):
        return None
    newline = data.find(b"\n")
    rest = b"" if newline < 0 else data[newline + 1 :]
    return build_shebang(interpreter) + b"\n" + rest
