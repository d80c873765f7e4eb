"""Contract of the CLI with the private parts of typer and httpx it uses (cli/typer_internals.py,
client/lean_httpx.py). These fail loudly on an upgrade that changes them: re-check the module, then move the pin
in pyproject.toml."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import typer


def _major_minor(name: str) -> tuple[int, int]:
    major, minor = version(name).split(".")[:2]
    return int(major), int(minor)


def test_typer_is_a_version_whose_internals_are_known() -> None:
    assert _major_minor("typer") < (0, 29), "typer 0.29+: re-check cli/typer_internals.py, then raise the pin"


def test_typer_private_names_still_have_the_shape_used() -> None:
    from typer import main
    from typer._click import exceptions, globals
    from typer.models import CommandInfo, TyperInfo

    assert list(inspect.signature(main.get_command_from_info).parameters)[:3] == [
        "command_info", "pretty_exceptions_short", "rich_markup_mode"]
    assert {"group_info", "pretty_exceptions_short", "suggest_commands", "rich_markup_mode"} <= set(
        inspect.signature(main.get_group_from_info).parameters)
    assert main.get_command_name("list") == "list"
    assert main.solve_typer_info_defaults(TyperInfo(typer.Typer(), name="x")).name == "x"
    assert {"callback", "name"} <= set(vars(CommandInfo()))
    assert hasattr(typer.Typer(), "registered_commands") and hasattr(typer.Typer(), "registered_groups")
    assert issubclass(exceptions.UsageError, exceptions.ClickException)
    assert callable(globals.get_current_context)


def _help_texts(command: object, path: list[str]) -> dict[str, str]:
    """The help of a group and of each group under it, by path."""
    import typer.core

    root = typer.core.TyperGroup
    ctx = command.make_context("axme", ["--help"], resilient_parsing=True)  # type: ignore[attr-defined]
    texts = {" ".join(path): command.get_help(ctx)}  # type: ignore[attr-defined]
    if isinstance(command, root):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if isinstance(sub, root):
                texts.update(_help_texts(sub, [*path, name]))
    return texts


def test_lazily_built_help_is_typer_help() -> None:
    """The lazy command tree shows exactly what typer's own, eager conversion shows."""
    from axme_cli.cli.app import app
    from axme_cli.cli.typer_internals import lazy_command

    lazy = _help_texts(lazy_command(app), [])
    eager = _help_texts(typer.main.get_command(app), [])
    assert set(lazy) == set(eager) and len(lazy) > 5
    assert lazy == eager


def test_httpx_still_imports_its_cli_the_way_the_stand_in_relies_on() -> None:
    import httpx

    assert _major_minor("httpx") < (0, 30), "httpx 0.30+: re-check client/lean_httpx.py, then raise the pin"
    source = Path(httpx.__file__).read_text()
    assert "from ._main import main" in source and "except ImportError" in source


def test_the_client_loads_httpx_without_its_command_line_tool() -> None:
    code = ("import sys\nimport axme_cli.client.http\nimport httpx\n"
            "assert httpx.Client is not None\n"
            "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygments'})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
