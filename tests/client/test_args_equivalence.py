"""The fast parser and the argparse parser (`--help`'s) read one table and agree on it.

For a table of command lines, each benchmarked command is parsed twice, by `satchel.client.args`
and by the argparse parser `satchel.client.main` builds for `--help`; both must give the same
values and, what matters to the daemon, the same request params (`build_params`). Lines where
the two deliberately differ are tested in test_args.py (positionals after options, a literal
`--` for `satchel run`'s tool).
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType
from typing import Any

import pytest

from satchel.client import args as fast
from satchel.client.commands import install, prefetch, resolve, run
from satchel.client.commands.requirements import ParamsError
from satchel.client.main import argparse_parser

MODULES = {"resolve": resolve, "install": install, "run": run, "prefetch": prefetch}

LINES = [
    "resolve pkg",
    "resolve pkg other>=1 --offline",
    "resolve --offline pkg",
    "resolve -r req.txt",
    "resolve -rreq.txt -r=b.txt --requirement c.txt --requirement=d.txt",
    "resolve -c cons.txt --constraint=more.txt pkg",
    "resolve --extra a --extra=b --group dev -r pyproject.toml",
    "resolve --python 3.12 pkg",
    "resolve --python=./venv pkg",
    "resolve --platform manylinux_2_17_x86_64 --platform=macosx_11_0_arm64 pkg",
    "resolve --python-version 3.10 pkg",
    "resolve --index-strategy unsafe-best-match pkg",
    "resolve --index-strategy=first-index --pre pkg",
    "resolve --format pylock -o out.toml pkg",
    "resolve --format=json --output=out.json pkg",
    "resolve -oout.txt --format requirements pkg",
    "resolve --offline -- -weird-name",
    "resolve --python 3.11 --python 3.12 pkg",
    "install --venv v pkg",
    "install --venv=v --offline -r req.txt",
    "install --venv v --lock pylock.toml",
    "install --venv v --lock=pylock.toml --link-mode hardlink --compile --json",
    "install --link-mode=copy --venv v --python 3.12 pkg",
    "install --venv v --platform p --python-version 3.10 pkg",
    "prefetch pkg",
    "prefetch -r req.txt -c c.txt --json",
    "prefetch --watched",
    "resolve --offline",
    "resolve --python 3.12 --platform p pkg",
    "prefetch --platform p --python-version 3.9 --pre --index-strategy first-index pkg",
    "run tool",
    "run --offline --from pkg==1 tool --version",
    "run --from=pkg --with a --with=b --python 3.12 tool -x --offline -- y",
    "run --offline -- tool --help",
    "run tool --from other -r x",
]


def both(line: str) -> tuple[ModuleType, dict[str, Any], dict[str, Any]]:
    """(module, fast parser's values, argparse's values without main's own keys)."""
    command, *rest = line.split()
    module = MODULES[command]
    ours = vars(fast.parse(module.SPEC, rest))
    theirs = vars(argparse_parser(module).parse_args([command, *rest]))
    for key in ("handler", "socket", "autostart"):
        del theirs[key]
    if command != "run":  # the sub-parser's name; `run`'s own COMMAND positional overwrites it
        del theirs["command"]
    return module, ours, theirs


def params_or_error(module: ModuleType, values: dict[str, Any]) -> object:
    try:
        return module.build_params(fast.Namespace(**values))
    except ParamsError as exc:
        return f"ParamsError: {exc}"


@pytest.mark.parametrize("line", LINES)
def test_same_values(line: str) -> None:
    _module, ours, theirs = both(line)
    assert ours == theirs


@pytest.mark.parametrize("line", LINES)
def test_same_request_params(line: str) -> None:
    module, ours, theirs = both(line)
    assert params_or_error(module, ours) == params_or_error(module, theirs)


def test_params_carry_absolute_paths() -> None:
    params = install.build_params(
        fast.parse(install.SPEC, ["--venv", "v", "-r", "req.txt", "--lock", "l.toml"])
    )
    cwd = os.getcwd()
    assert params["venv"] == os.path.join(cwd, "v")
    assert params["requirement_files"] == [os.path.join(cwd, "req.txt")]
    assert params["lock"] == os.path.join(cwd, "l.toml")
    assert params["python"] == sys.executable


@pytest.mark.parametrize(
    "line",
    [
        "resolve --bogus pkg",
        "resolve --format xml pkg",
        "resolve --python",
        "install pkg",
        "install --venv v --link-mode symlink pkg",
        "run --offline",
        "run --from",
        "prefetch --json=1 pkg",
    ],
)
def test_both_refuse_the_same_bad_lines(line: str) -> None:
    command, *rest = line.split()
    module = MODULES[command]
    with pytest.raises(fast.ArgsError):
        fast.parse(module.SPEC, rest)
    with pytest.raises(SystemExit) as info:
        argparse_parser(module).parse_args([command, *rest])
    assert info.value.code == 2


def test_argparse_help_lists_every_option_of_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command, module in MODULES.items():
        with pytest.raises(SystemExit):
            argparse_parser(module).parse_args([command, "--help"])
        text = capsys.readouterr().out
        for option in module.SPEC.options:
            for name in option.names:
                assert name in text, (command, name)
            assert option.help.split()[0] in text


def test_arity_constants_are_argparses() -> None:
    assert fast.ZERO_OR_MORE == argparse.ZERO_OR_MORE
    assert fast.REMAINDER == argparse.REMAINDER
