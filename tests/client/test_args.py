"""`satchel.client.args`: the option parser of the benchmarked commands, form by form.

The commands' own tables (`SPEC` of resolve, install, run, prefetch) are used where a real option
set matters; a small table of its own covers the forms independently of those commands.
"""

from __future__ import annotations

import pytest

from satchel.client.args import (
    APPEND,
    FLAG,
    REMAINDER,
    ZERO_OR_MORE,
    ArgsError,
    Command,
    HelpRequested,
    Namespace,
    Option,
    Positional,
    parse,
)
from satchel.client.commands import install, prefetch, resolve, run

DEMO = Command(
    "demo",
    help="a demo",
    options=(
        Option("-r", "--requirement", kind=APPEND, metavar="FILE"),
        Option("--python", metavar="PYTHON"),
        Option("--offline", kind=FLAG),
        Option("--format", choices=("a", "b"), default="a"),
        Option("--venv", required=False, metavar="PATH"),
    ),
    positionals=(Positional("requirements", nargs=ZERO_OR_MORE, metavar="REQ"),),
)


def test_defaults_when_nothing_is_given() -> None:
    assert parse(DEMO, []) == Namespace(
        requirement=[], python=None, offline=False, format="a", venv=None, requirements=[]
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--python", "3.12"],
        ["--python=3.12"],
    ],
)
def test_long_option_takes_its_value_separately_or_after_equals(argv: list[str]) -> None:
    assert parse(DEMO, argv).python == "3.12"


@pytest.mark.parametrize(
    "argv",
    [["-r", "req.txt"], ["-rreq.txt"], ["-r=req.txt"], ["--requirement", "req.txt"]],
)
def test_short_option_forms(argv: list[str]) -> None:
    assert parse(DEMO, argv).requirement == ["req.txt"]


def test_an_empty_value_after_equals_is_kept() -> None:
    assert parse(DEMO, ["--python="]).python == ""


def test_repeatable_options_collect_in_order() -> None:
    args = parse(DEMO, ["-r", "a.txt", "--requirement=b.txt", "-rc.txt"])
    assert args.requirement == ["a.txt", "b.txt", "c.txt"]


def test_repeatable_defaults_are_fresh_lists() -> None:
    first = parse(DEMO, [])
    first.requirement.append("x")
    assert parse(DEMO, []).requirement == []


def test_a_value_option_given_twice_keeps_the_last() -> None:
    assert parse(DEMO, ["--python", "3.11", "--python", "3.12"]).python == "3.12"


def test_flags() -> None:
    assert parse(DEMO, ["--offline"]).offline is True


def test_positionals_may_come_before_between_and_after_options() -> None:
    args = parse(DEMO, ["a", "--offline", "b", "-r", "f", "c"])
    assert args.requirements == ["a", "b", "c"]
    assert args.requirement == ["f"]


def test_double_dash_ends_options() -> None:
    args = parse(DEMO, ["a", "--", "--offline", "-r", "-"])
    assert args.requirements == ["a", "--offline", "-r", "-"]
    assert args.offline is False


def test_a_lone_dash_is_a_value() -> None:
    assert parse(DEMO, ["-r", "-", "-"]).requirements == ["-"]
    assert parse(DEMO, ["-r", "-"]).requirement == ["-"]


@pytest.mark.parametrize("argv", [["--bogus"], ["-x"], ["--off"], ["--offline-mode"]])
def test_unknown_options_and_abbreviations_are_errors(argv: list[str]) -> None:
    with pytest.raises(ArgsError, match="unknown option"):
        parse(DEMO, argv)


@pytest.mark.parametrize("argv", [["--python"], ["-r"], ["--python", "--offline"], ["-r", "--"]])
def test_missing_value(argv: list[str]) -> None:
    with pytest.raises(ArgsError, match="needs a value"):
        parse(DEMO, argv)


def test_flag_with_a_value_is_an_error() -> None:
    with pytest.raises(ArgsError, match="--offline takes no value"):
        parse(DEMO, ["--offline=yes"])


def test_bad_choice_names_the_choices() -> None:
    with pytest.raises(ArgsError, match=r"invalid choice 'c' \(choose from a, b\)"):
        parse(DEMO, ["--format", "c"])
    with pytest.raises(ArgsError, match="invalid choice"):
        parse(DEMO, ["--format=c"])


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["a", "--offline", "--help"]])
def test_help_is_signalled(argv: list[str]) -> None:
    with pytest.raises(HelpRequested):
        parse(DEMO, argv)


def test_help_after_double_dash_is_a_positional() -> None:
    assert parse(DEMO, ["--", "--help"]).requirements == ["--help"]


def test_error_messages_are_one_line() -> None:
    for argv in (["--bogus"], ["--python"], ["--format", "c"], ["--offline=1"]):
        with pytest.raises(ArgsError) as info:
            parse(DEMO, argv)
        assert "\n" not in str(info.value)


def test_a_required_option_must_be_given() -> None:
    with pytest.raises(ArgsError, match=r"--venv is required \(--venv PATH\)"):
        parse(install.SPEC, ["pkg"])


def test_unexpected_positional_when_none_are_declared() -> None:
    bare = Command("bare", help="", options=(Option("--offline", kind=FLAG),))
    with pytest.raises(ArgsError, match="unexpected argument 'x'"):
        parse(bare, ["x"])


def test_a_remainder_alone_takes_everything_from_the_first_positional() -> None:
    wrapper = Command(
        "wrap",
        help="",
        options=(Option("--offline", kind=FLAG),),
        positionals=(Positional("argv", nargs=REMAINDER),),
    )
    args = parse(wrapper, ["--offline", "tool", "--offline", "-x"])
    assert (args.offline, args.argv) == (True, ["tool", "--offline", "-x"])


def test_only_the_last_positional_may_take_several() -> None:
    with pytest.raises(ValueError, match="only the last positional"):
        Command("bad", help="", positionals=(Positional("a", nargs=ZERO_OR_MORE), Positional("b")))


def test_a_name_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Command("dup", help="", options=(Option("--a"), Option("--a", kind=FLAG)))


# -- `satchel run`: everything after COMMAND is the tool's -----------------------------------


def test_run_splits_its_options_from_the_tools_arguments() -> None:
    args = parse(run.SPEC, ["--offline", "--from", "x", "y", "--offline", "-h", "--from", "z"])
    assert (args.offline, args.spec, args.command) == (True, "x", "y")
    assert args.args == ["--offline", "-h", "--from", "z"]


def test_run_passes_a_literal_double_dash_to_the_tool() -> None:
    # argparse would drop it (`y -- z` -> ['z']); a tool may give `--` a meaning of its own.
    assert parse(run.SPEC, ["y", "--", "z"]).args == ["--", "z"]


def test_run_double_dash_before_the_command() -> None:
    args = parse(run.SPEC, ["--offline", "--", "--weird-name", "--x"])
    assert (args.command, args.args) == ("--weird-name", ["--x"])


def test_run_repeatable_with() -> None:
    args = parse(run.SPEC, ["--with", "a", "--with=b", "tool"])
    assert args.extra == ["a", "b"]


def test_run_help_before_the_command_is_help() -> None:
    with pytest.raises(HelpRequested):
        parse(run.SPEC, ["--offline", "--help", "tool"])


def test_run_without_a_command_is_an_error() -> None:
    with pytest.raises(ArgsError, match="COMMAND is required"):
        parse(run.SPEC, ["--offline"])


# -- the tables and their usage lines --------------------------------------------------------


def test_usage_lines() -> None:
    assert resolve.SPEC.usage() == "usage: satchel resolve [OPTIONS] [REQ ...]"
    assert install.SPEC.usage() == "usage: satchel install [OPTIONS] --venv PATH [REQ ...]"
    assert run.SPEC.usage() == "usage: satchel run [OPTIONS] COMMAND [ARGS ...]"
    assert prefetch.SPEC.usage() == "usage: satchel prefetch [OPTIONS] [REQ ...]"


@pytest.mark.parametrize("spec", [resolve.SPEC, install.SPEC, prefetch.SPEC])
def test_every_requirement_option_parses(spec: Command) -> None:
    args = parse(
        spec,
        [
            *("-r", "a.txt", "-rb.txt", "-c", "c.txt", "--constraint=d.txt"),
            *("--extra", "x", "--group", "g", "--platform", "p1", "--platform=p2"),
            *("--python-version", "3.10", "--offline", "--index-strategy=unsafe-best-match"),
            *("--pre", "--python", "py", "req"),
            *(["--venv", "v"] if spec is install.SPEC else []),
        ],
    )
    assert args.requirement == ["a.txt", "b.txt"]
    assert args.constraint == ["c.txt", "d.txt"]
    assert (args.extra, args.group, args.platform) == (["x"], ["g"], ["p1", "p2"])
    assert (args.python_version, args.python, args.index_strategy) == (
        "3.10",
        "py",
        "unsafe-best-match",
    )
    assert args.offline is args.pre is True
    assert args.requirements == ["req"]
