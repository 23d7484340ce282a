"""docs/architecture.md's layer table and the daemon's folder tree agree, name for name (issue 14).

The import contracts (`lint-imports`, in pyproject.toml) prove how the layers may import each
other; this proves that the document a newcomer reads names every layer package and every module
in it, and nothing that is not there, and that the contract lists the layers in the same order.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAEMON = REPO / "daemon" / "src" / "satchel" / "daemon"
#: The one module outside the layers, shared by all of them.
SHARED = {"errors"}


def _table() -> dict[str, set[str]]:
    """Package -> modules, from the table under "## Daemon layers"."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Daemon layers", 1)[1]
    packages: dict[str, set[str]] = {}
    for line in section.splitlines():
        row = re.match(r"\| [^|]+ \| `(\w+)/` \| (.+) \|$", line)
        if row:
            names = set(re.findall(r"`(\w+)`", row.group(2)))
            packages[row.group(1)] = names - {"__init__"}
    return packages


def _tree() -> dict[str, set[str]]:
    return {
        package.name: {module.stem for module in package.glob("*.py")} - {"__init__"}
        for package in DAEMON.iterdir()
        if (package / "__init__.py").is_file()
    }


def test_the_layer_table_names_every_package_and_module_of_the_tree() -> None:
    table, tree = _table(), _tree()
    assert sorted(table) == sorted(tree)
    for package, modules in tree.items():
        assert table[package] == modules, package


def test_nothing_but_the_shared_errors_module_lies_outside_the_layers() -> None:
    loose = {path.stem for path in DAEMON.glob("*.py")} - {"__init__"}
    assert loose == SHARED


def test_the_layers_contract_lists_the_table_s_layers_in_its_order() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    [layers] = [c for c in contracts if c["type"] == "layers"]
    assert layers["containers"] == ["satchel.daemon"]
    assert layers["exhaustive"] is True
    assert layers["layers"] == [*_table(), *sorted(SHARED)]
