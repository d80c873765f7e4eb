"""Everything the CLI takes from typer that is not typer's public API, in one place.

pyproject.toml holds typer below 0.29 for it, and tests/cli/test_typer_internals.py checks each name used here,
so an upgrade fails that test loudly instead of breaking `axme` at run time:
- `typer.main.get_command_from_info`, `get_group_from_info`, `get_command_name`, `solve_typer_info_defaults`
  and the `registered_*` lists of a Typer: LazyTyper builds each command only when it is looked up.
  Building every command up front (typer's own way) costs ~30 ms of CPU per run, which `axme --help` and
  `axme version` would pay for nothing (bench/cli_startup.py; the budget is 100 ms);
- `typer._click`: typer vendors click; its exceptions and the current context are not re-exported;
- `typer._completion_shared.get_completion_script` and `install`: `axme completion SHELL [--install]` prints or
  installs the same script as typer's hidden --show-completion / --install-completion.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
from typer._click.exceptions import ClickException
from typer._click.globals import get_current_context
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer.models import CommandInfo, TyperInfo

__all__ = ["ClickException", "LazyGroup", "LazyTyper", "completion_script", "current_context", "install_completion",
           "lazy_command", "merge_commands"]

COMPLETE_VAR = "_AXME_COMPLETE"  # typer's name for it: _<PROG>_COMPLETE


def completion_script(shell: str) -> str:
    """The script that makes ``shell`` complete `axme` (it calls axme back with COMPLETE_VAR set)."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="axme", complete_var=COMPLETE_VAR, shell=shell)


def install_completion(shell: str) -> str:
    """Install the script where ``shell`` reads it (e.g. ~/.bashrc sources it); returns that path."""
    from typer._completion_shared import install

    _, path = install(shell=shell, prog_name="axme", complete_var=COMPLETE_VAR)
    return str(path)


def merge_commands(app: typer.Typer, commands: typer.Typer) -> None:
    """Make the commands of ``commands`` (a Typer without a callback) commands of ``app`` itself, still built
    lazily (`app.add_typer(commands)` without a name would build them all at once)."""
    app.registered_commands.extend(commands.registered_commands)


def current_context() -> Any:
    """The click context of the command being run (a command's own, whose root holds the global options)."""
    return get_current_context()


class LazyTyper(typer.Typer):
    """A Typer whose commands become click commands only when they are looked up.

    typer turns every registered function into a click command by inspecting its signature (type hints,
    defaults, typer.Option metadata), and `typer.main.get_command` does that for every command of every
    group before parsing a single argument: tens of milliseconds for this CLI. Here typer itself still
    builds each group (name, help, callback and its options, --install-completion on the root) and each
    command, but a group's `commands` mapping builds an entry on first lookup, so `axme version` builds
    one command. A group's help lists the commands it has not built from stand-ins that typer builds from
    the same registration without the parameters (see LazyGroup). Parsing, help text and completion stay
    typer's. (typer.testing.CliRunner and `typer.main.get_command(app)` still work: they build everything
    eagerly, as typer always does.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", LazyGroup)
        super().__init__(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Typer.__call__ only adds its pretty-exception hook, which this app disables anyway.
        return lazy_command(self)(*args, **kwargs)


class LazyGroup(TyperGroup):
    """A TyperGroup whose help lists commands not built yet by their stand-ins (`_stand_in`)."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        commands = self.commands
        if not isinstance(commands, _LazyCommands):
            super().format_commands(ctx, formatter)
            return
        self.commands = commands.listing()
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.commands = commands


def lazy_command(app: typer.Typer) -> Any:
    """`typer.main.get_command(app)`, with each group's commands built on first lookup."""
    from typer.main import get_command

    if app.registered_callback is None:  # not a group of ours: typer's own conversion
        return get_command(app)
    commands, groups = app.registered_commands, app.registered_groups
    app.registered_commands, app.registered_groups = [], []
    try:
        root: Any = get_command(app)  # a TyperGroup (the app has a callback), with --install-completion
    finally:
        app.registered_commands, app.registered_groups = commands, groups
    root.commands = _LazyCommands(app, commands, groups)
    return root


class _LazyCommands(MutableMapping[str, Any]):
    """A click group's `commands`: name -> command, each built on first lookup; named and ordered as
    typer's get_group_from_info names and orders them."""

    def __init__(self, app: typer.Typer, commands: list[CommandInfo], groups: list[TyperInfo]) -> None:
        from typer.main import get_command_from_info, get_command_name, get_group_from_info, solve_typer_info_defaults

        options: dict[str, Any] = {"pretty_exceptions_short": app.pretty_exceptions_short,
                                   "rich_markup_mode": app.rich_markup_mode}
        self._makers: dict[str, Callable[[], Any]] = {}
        self._stand_ins: dict[str, Callable[[], Any]] = {}
        self._made: dict[str, Any] = {}
        for info in commands:
            name = info.name or get_command_name(getattr(info.callback, "__name__", ""))
            self._makers[name] = functools.partial(get_command_from_info, info, **options)
            self._stand_ins[name] = functools.partial(_stand_in, info, options)
        for group_info in groups:
            group_name = solve_typer_info_defaults(group_info).name
            if group_name:
                self._makers[group_name] = functools.partial(_lazy_group, app, group_info)
                continue
            # add_typer() without a name: typer merges the sub-app's commands into this group; build it eagerly.
            merged = get_group_from_info(group_info, suggest_commands=app.suggest_commands, **options)
            for name, command in merged.commands.items():
                self[name] = command

    def __getitem__(self, name: str) -> Any:
        if name not in self._made:
            maker = self._makers[name]  # KeyError: no such command (click's `get` turns it into None)
            try:
                self._made[name] = maker()
            except KeyError as exc:  # not "no such command": a bug while building it
                raise RuntimeError(f"could not build the command {name!r}") from exc
        return self._made[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._makers[name] = functools.partial(lambda c: c, command)
        self._stand_ins.pop(name, None)
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        del self._makers[name]
        self._stand_ins.pop(name, None)
        self._made.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._makers

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)

    def listing(self) -> dict[str, Any]:
        """For a help's command list: built commands as they are, unbuilt commands as their stand-ins."""
        return {name: self[name] if name in self._made or name not in self._stand_ins else self._stand_ins[name]()
                for name in self._makers}


def _stand_in(info: CommandInfo, options: dict[str, Any]) -> Any:
    """The command as typer builds it from its registration, only without parameters: its name, help,
    short help, hidden and deprecated flags are the real ones, which is all a command list shows. Only
    listed, never invoked."""
    from typer.main import get_command_from_info

    def placeholder() -> None:
        raise RuntimeError("a help stand-in was invoked")

    placeholder.__name__ = getattr(info.callback, "__name__", "command")
    placeholder.__doc__ = getattr(info.callback, "__doc__", None)
    stand_in = copy.copy(info)
    stand_in.callback = placeholder
    return get_command_from_info(stand_in, **options)


def _lazy_group(app: typer.Typer, info: TyperInfo) -> Any:
    """The sub-group as typer builds it (help, callback, options), minus its commands, which come lazily."""
    from typer.main import get_group_from_info, solve_typer_info_defaults

    sub = info.typer_instance
    assert sub is not None, "add_typer() always records the sub-app"
    shell = copy.copy(sub)
    shell.registered_commands, shell.registered_groups = [], []
    shell_info = copy.copy(info)
    shell_info.typer_instance = shell
    if solve_typer_info_defaults(info).cls in (None, TyperGroup):  # keep a group class a module chose
        shell_info.cls = LazyGroup
    group = get_group_from_info(shell_info, pretty_exceptions_short=app.pretty_exceptions_short,
                                suggest_commands=app.suggest_commands, rich_markup_mode=app.rich_markup_mode)
    group.commands = _LazyCommands(app, sub.registered_commands, sub.registered_groups)
    return group
