"""Click options that the command modules (tagkit.cli, tagkit.taxonomy_commands) share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class InputPath(click.Path):
    """A products file (or, `dir_okay`, a folder of images) that is there; a pipe (`<(...)`, `/dev/stdin` from a
    pipe) or a device is refused with a usage error: the file is read twice (its format sniffed first)."""

    def __init__(self, dir_okay: bool = True) -> None:
        super().__init__(exists=True, dir_okay=dir_okay, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        if not Path(path).is_dir() and not Path(path).is_file():
            self.fail(f"{value} is a pipe or a device, not a file: save what it gives to a file first", param, ctx)
        return path


def json_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--json`: the command's summary as JSON on stdout; given, a failure prints `{"error", "exit_code"}` there
    (the command's `Context.json` is set as soon as the option is read)."""
    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if ctx.obj is not None:
            ctx.obj.json = value
        return value

    return click.option("--json", "as_json", is_flag=True, help=help, callback=remember)


def input_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how to read a products file, shared by every command that reads one."""
    for option in reversed([
        click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Column mapping (tagkit.yaml). Default: ./tagkit.yaml when it exists."),
        click.option("-m", "--map", "overrides", multiple=True, metavar="FIELD=COLUMN",
                     help="Read a tagkit field from a column, e.g. --map title=productDisplayName. Repeatable."),
    ]):
        command = option(command)
    return command
