"""A tiny option parser for the commands whose start-up time is benchmarked.

`satchel resolve`, `install`, `run` and `prefetch` are measured as whole processes against uv,
and `import argparse` alone (with `re` and `gettext`) costs about 5 ms of a ~15 ms budget. So
each of those commands describes its options once, as a `Command` table, and two readers share
that table:

- `parse(command, argv)` (this module, no imports at all) handles every normal command line;
- `add_to_argparse(command, subparsers, handler)` builds the equivalent argparse parser, which
  main uses only for `--help` (help is not a hot path; its text stays complete and in one place).

Accepted forms: `--opt value`, `--opt=value`, `-r value`, `-rvalue`, `-r=value`, flags
(`--offline`), repeatable options (`-r a -r b`), positionals anywhere (`resolve a --pre b`),
and `--` (everything after it is positional). A `REMAINDER` positional (the tool's arguments of
`satchel run`) takes every argument after the first positional verbatim, including ones that
look like options and a literal `--`, which argparse would drop. Abbreviated long options are
not accepted (the argparse parser is built with `allow_abbrev=False` to match), so adding an
option can never change the meaning of an existing command line.

Errors raise `ArgsError` with a one-line message; `-h`/`--help` raises `HelpRequested`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = [
    "APPEND",
    "FLAG",
    "ONE",
    "REMAINDER",
    "VALUE",
    "ZERO_OR_MORE",
    "ArgsError",
    "Command",
    "HelpRequested",
    "Namespace",
    "Option",
    "Positional",
    "add_to_argparse",
    "parse",
]

#: Option kinds: a boolean switch, a single value (last one wins), a repeatable value.
FLAG = "flag"
VALUE = "value"
APPEND = "append"

#: Positional arities: exactly one, any number, or "this one and everything after it".
ONE = "one"
ZERO_OR_MORE = "*"
REMAINDER = "..."


class ArgsError(Exception):
    """A bad command line; the message is one line, printed after the usage line (exit 2)."""


class HelpRequested(Exception):
    """`-h`/`--help` was given where an option may appear."""


class Option:
    """One option: its spellings, where it is stored, and how it takes a value."""

    __slots__ = ("choices", "default", "dest", "help", "kind", "metavar", "names", "required")

    def __init__(
        self,
        *names: str,
        kind: str = VALUE,
        dest: str | None = None,
        metavar: str | None = None,
        help: str = "",
        choices: Sequence[str] = (),
        default: str | None = None,
        required: bool = False,
    ) -> None:
        self.names = names
        self.kind = kind
        self.dest = dest or max(names, key=len).lstrip("-").replace("-", "_")
        self.metavar = metavar
        self.help = help
        self.choices = tuple(choices)
        self.default = default
        self.required = required

    def initial(self) -> object:
        """The value before the command line says anything (a fresh list for repeatables)."""
        if self.kind == FLAG:
            return False
        if self.kind == APPEND:
            return []
        return self.default

    def label(self) -> str:
        """How usage and errors name it: `--venv PATH`."""
        if self.kind == FLAG:
            return self.names[-1]
        return f"{self.names[-1]} {self.metavar or self.dest.upper()}"


class Positional:
    """A positional argument: `ONE`, `ZERO_OR_MORE` or `REMAINDER` (only last)."""

    __slots__ = ("dest", "help", "metavar", "nargs")

    def __init__(self, dest: str, *, nargs: str = ONE, metavar: str = "", help: str = "") -> None:
        self.dest = dest
        self.nargs = nargs
        self.metavar = metavar or dest.upper()
        self.help = help


class Command:
    """The one description of a command's command line."""

    __slots__ = ("_lookup", "description", "help", "name", "options", "positionals")

    def __init__(
        self,
        name: str,
        *,
        help: str,
        description: str | None = None,
        options: Sequence[Option] = (),
        positionals: Sequence[Positional] = (),
    ) -> None:
        self.name = name
        self.help = help
        self.description = description
        self.options = tuple(options)
        self.positionals = tuple(positionals)
        self._lookup = {name: option for option in self.options for name in option.names}
        if len(self._lookup) != sum(len(option.names) for option in self.options):
            raise ValueError(f"{name}: an option name is declared twice")
        if any(p.nargs != ONE for p in self.positionals[:-1]):
            raise ValueError(f"{name}: only the last positional may take several arguments")

    def find(self, name: str) -> Option | None:
        return self._lookup.get(name)

    def usage(self) -> str:
        """A one-line usage: required options and positionals spelled out, the rest summarised."""
        parts = [f"usage: satchel {self.name}"]
        if any(not option.required for option in self.options):
            parts.append("[OPTIONS]")
        parts += [option.label() for option in self.options if option.required]
        for positional in self.positionals:
            if positional.nargs == ONE:
                parts.append(positional.metavar)
            else:
                parts.append(f"[{positional.metavar} ...]")
        return " ".join(parts)


class Namespace:
    """Parsed values as attributes, like `argparse.Namespace` (`vars()` gives the dict)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __repr__(self) -> str:
        inner = ", ".join(f"{key}={value!r}" for key, value in sorted(vars(self).items()))
        return f"Namespace({inner})"

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


def _looks_like_option(arg: str) -> bool:
    return arg.startswith("-") and arg != "-"


def parse(command: Command, argv: Sequence[str]) -> Namespace:
    """Parse the arguments after the command name; raise `ArgsError` or `HelpRequested`."""
    values: dict[str, object] = {option.dest: option.initial() for option in command.options}
    free: list[str] = []
    remainder_at = next(
        (n for n, p in enumerate(command.positionals) if p.nargs == REMAINDER), None
    )
    options_done = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if options_done or not _looks_like_option(arg):
            free.append(arg)
            if remainder_at is not None and len(free) >= max(remainder_at, 1):
                free.extend(argv[i:])  # the rest belongs to the tool, verbatim
                break
            continue
        if arg == "--":
            options_done = True
            continue
        if arg in ("-h", "--help"):
            raise HelpRequested
        if arg.startswith("--"):
            name, equals, inline = arg.partition("=")
            value: str | None = inline if equals else None
        else:
            name, value = arg[:2], arg[2:] or None
            if value is not None and value.startswith("="):
                value = value[1:]  # `-r=FILE`, as argparse reads it
        option = command.find(name)
        if option is None:
            raise ArgsError(f"unknown option {arg!r}")
        if option.kind == FLAG:
            if value is not None:
                raise ArgsError(f"{name} takes no value")
            values[option.dest] = True
            continue
        if value is None:
            if i >= len(argv) or _looks_like_option(argv[i]):
                raise ArgsError(f"{name} needs a value ({option.label()})")
            value = argv[i]
            i += 1
        if option.choices and value not in option.choices:
            raise ArgsError(
                f"{name}: invalid choice {value!r} (choose from {', '.join(option.choices)})"
            )
        if option.kind == APPEND:
            stored = values[option.dest]
            assert isinstance(stored, list)
            stored.append(value)
        else:
            values[option.dest] = value
    for option in command.options:
        if option.required and values[option.dest] is None:
            raise ArgsError(f"{option.names[-1]} is required ({option.label()})")
    _assign_positionals(command, free, values)
    return Namespace(**values)


def _assign_positionals(command: Command, free: list[str], values: dict[str, object]) -> None:
    rest = free
    for positional in command.positionals:
        if positional.nargs == ONE:
            if not rest:
                raise ArgsError(f"{positional.metavar} is required")
            values[positional.dest], rest = rest[0], rest[1:]
        else:
            values[positional.dest], rest = list(rest), []
    if rest:
        raise ArgsError(f"unexpected argument {rest[0]!r}")


def add_to_argparse(
    command: Command,
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    handler: Callable[[Any], int],
) -> argparse.ArgumentParser:
    """Add `command` to an argparse sub-parser set, option for option (for `--help`)."""
    parser = subparsers.add_parser(
        command.name, help=command.help, description=command.description, allow_abbrev=False
    )
    for option in command.options:
        settings: dict[str, Any] = {"dest": option.dest, "help": option.help}
        if option.kind == FLAG:
            settings["action"] = "store_true"
        else:
            settings["default"] = [] if option.kind == APPEND else option.default
            if option.kind == APPEND:
                settings["action"] = "append"
            if option.metavar:
                settings["metavar"] = option.metavar
            if option.choices:
                settings["choices"] = list(option.choices)
            if option.required:
                settings["required"] = True
        parser.add_argument(*option.names, **settings)
    for positional in command.positionals:
        settings = {"metavar": positional.metavar, "help": positional.help}
        if positional.nargs != ONE:
            settings["nargs"] = positional.nargs  # "*" and argparse.REMAINDER ("...")
        parser.add_argument(positional.dest, **settings)
    parser.set_defaults(handler=handler)
    return parser
