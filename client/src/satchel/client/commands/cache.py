"""`satchel cache info|verify|prune`: inspect, check and trim the store.

`info` shows how many files the daemon holds and how big they are, in total and per index (a file
served by two indexes is stored once, and listed under both). `verify` re-hashes every stored
file; a file whose bytes no longer match its sha256 is moved to the quarantine directory and
forgotten, so it is fetched again the next time it is needed; then every unpacked tree (what
installs link from) is re-hashed against its wheel's RECORD, and a damaged one is quarantined
and unpacked again from its wheel. Its exit status is 1 when it found corruption, so scripts
can tell. `prune` removes least-recently-used files until the cache is under a size cap
(``--max-size``, else config's ``cache-max-size``) and files unused for longer than the age cap,
never a file a watched project or a watched lock file needs; ``--dry-run`` lists what it would
free.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from satchel.client.session import Session
from satchel.protocol import errors

__all__ = [
    "add_parser",
    "format_info",
    "format_prune",
    "format_size",
    "format_verify",
    "parse_duration",
    "parse_size",
    "run",
]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="show what the cache holds (per index) or verify every stored file",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    info = actions.add_parser("info", help="files, sizes and pages, in total and per index")
    info.add_argument("--json", action="store_true", help="print the answer as JSON")
    verify = actions.add_parser(
        "verify",
        help="re-hash every stored file and unpacked tree; quarantine and repair (exit 1 if any)",
    )
    verify.add_argument("--json", action="store_true", help="print the answer as JSON")
    prune = actions.add_parser(
        "prune", help="free space: least recently used first, never what watched projects need"
    )
    prune.add_argument(
        "--max-size", type=parse_size, metavar="SIZE", help="size cap, e.g. 20GiB (default: config)"
    )
    prune.add_argument(
        "--max-age",
        type=parse_duration,
        metavar="AGE",
        help="remove files unused this long, e.g. 90d (default: config)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    prune.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: str) -> int:
    """Bytes from ``123``, ``500MB`` or ``20 GiB`` (the units config.toml accepts)."""
    match = _SIZE.match(value)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {value!r} (e.g. 500MB, 20GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def parse_duration(value: str) -> int:
    """Seconds from ``3600``, ``90m``, ``12h`` or ``90d``."""
    match = _DURATION.match(value)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (e.g. 12h, 90d)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def run(args: argparse.Namespace) -> int:
    with Session.for_args(args) as session:
        if args.action == "info":
            value = session.call("cache.info", {})
        elif args.action == "prune":
            params = {"max_size": args.max_size, "max_age": args.max_age, "dry_run": args.dry_run}
            value = session.call("cache.prune", params)
        else:
            progress = _Progress(enabled=not args.json and sys.stderr.isatty())
            try:
                value = session.call("cache.verify", {}, on_progress=progress)
            finally:
                progress.finish()
    if args.json:
        print(json.dumps(value, indent=2, sort_keys=True))
    elif args.action == "info":
        print(format_info(value))
    elif args.action == "prune":
        print(format_prune(value))
    else:
        print(format_verify(value))
    if args.action == "verify" and (value.get("corrupt") or value.get("corrupt_trees")):
        return errors.EXIT_FAILURE
    return errors.EXIT_OK


class _Progress:
    """One self-overwriting line on a terminal's stderr; nothing when not a terminal."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done, total = int(event.get("done") or 0), event.get("total")
        if event.get("unit") == "bytes":
            size = f"{format_size(done)}/{format_size(int(total))}" if total else format_size(done)
            line = f"{event.get('message', '')}, {size}"
        else:  # the unpacked trees, counted
            line = str(event.get("message", ""))
        sys.stderr.write(f"\rverifying: {line}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def format_size(size: int) -> str:
    """Bytes in the largest unit that keeps the number >= 1 (powers of 1000, like `du --si`)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_info(value: dict[str, Any]) -> str:
    lines = [
        f"cache:          {value['cache_dir']}",
        f"files:          {value['files']} ({format_size(value['bytes'])})",
        f"project pages:  {value['pages']}",
        f"core metadata:  {value['core_metadata']}",
        f"built wheels:   {value['built_wheels']}",
        f"database:       {format_size(value['database_bytes'])}",
    ]
    if value.get("unattributed_files"):
        local = value["unattributed_files"]
        lines.append(f"local files:    {local} (built here, not from an index)")
    if value.get("quarantined"):
        lines.append(
            f"quarantined:    {value['quarantined']} corrupt copies kept aside in "
            f"{value['cache_dir']}/quarantine"
        )
    indexes = value.get("indexes") or []
    if indexes:
        rows = [("index", "projects", "files", "size")]
        rows += [
            (i["index"], str(i["projects"]), str(i["files"]), format_size(i["bytes"]))
            for i in indexes
        ]
        widths = [max(len(row[col]) for row in rows) for col in range(4)]
        lines.append("")
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [
                cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        if len(indexes) > 1:
            lines.append("(a file served by several indexes is stored once, listed under each)")
    return "\n".join(lines)


def format_verify(value: dict[str, Any]) -> str:
    checked = f"{value['checked']} files ({format_size(value['bytes'])})"
    trees = value.get("trees_checked") or 0
    if trees:
        checked += f" and {trees} unpacked trees ({format_size(value.get('tree_bytes') or 0)})"
    corrupt = value.get("corrupt") or []
    damaged = value.get("corrupt_trees") or []
    if not corrupt and not damaged:
        return f"verified {checked}: all intact"
    lines = [f"verified {checked}:"]
    if corrupt:
        lines.append(f"{len(corrupt)} corrupt stored files, quarantined and forgotten:")
    for item in corrupt:
        name = item.get("filename") or "unknown file"
        where = ", ".join(item.get("indexes") or []) or "no recorded index"
        lines.append(f"  {name} (sha256 {item['sha256']}, from {where})")
        lines.append(f"    bytes now hash to {item['actual_sha256']}")
        lines.append(f"    moved to {item['quarantined_as']}")
    if corrupt:
        lines.append("They are downloaded again from their index the next time they are needed.")
    if damaged:
        lines.append(f"{len(damaged)} damaged unpacked trees (files no longer match RECORD):")
    for tree in damaged:
        lines.append(f"  {tree.get('filename') or 'unknown wheel'} (sha256 {tree['sha256']})")
        lines.append(f"    changed: {', '.join(tree.get('files') or [])}")
        lines.append(f"    moved to {tree['quarantined_as']}")
        lines.append(
            "    unpacked again from the stored wheel"
            if tree.get("repaired")
            else "    its wheel is gone: the next install of it downloads it again"
        )
    if damaged:
        lines.append(
            "Environments that linked a damaged file before still share it: recreate them."
        )
    return "\n".join(lines)


def format_prune(value: dict[str, Any]) -> str:
    removed = value.get("removed") or []
    verb = "would free" if value["dry_run"] else "freed"
    lines = []
    if value.get("max_size") is None and value.get("max_age") is None:
        lines.append("no cap given or configured (cache-max-size, cache-max-age): nothing to do")
    for item in removed:
        name = item.get("filename") or item["sha256"]
        why = "unused too long" if item["reason"] == "age" else "least recently used"
        lines.append(f"  {name}  {format_size(item['size'])}  ({why})")
    lines.append(
        f"{verb} {format_size(value['freed_bytes'])} in {len(removed)} files; "
        f"{format_size(value['total_after'])} stored; kept {value['protected']} files "
        f"({format_size(value['protected_bytes'])}) that watched projects need"
    )
    if value.get("trees"):
        lines.append(
            f"removed {value['trees']} unpacked trees ({format_size(value['tree_bytes'])})"
        )
    return "\n".join(lines)
