"""The `zsar` typer app. Each command lives in its own module and registers itself here.

Command modules import only typer/rich at module level; stages and backends (numpy, pyarrow,
torch, open_clip, transformers) are imported inside the command bodies, so `zsar --help` and
`zsar --version` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from zsar_cli import __version__


class ZsarGroup(TyperGroup):
    """The one error boundary of every command (see `cli.common.boundary`)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context (no public name)
        from zsar_cli.cli.common import boundary

        with boundary():
            return super().invoke(ctx)


app = typer.Typer(
    cls=ZsarGroup,
    name="zsar",
    help="Zero-shot action recognition and localization for video, as composable stages over "
    "Parquet/Arrow artifacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help is plain text: rich markup would eat "[ε, 1-ε]" or "zsar[ray]".
    rich_markup_mode=None,
)

# Modules under zsar_cli/cli/ that define `register(app)`. Only commands that work are listed.
COMMAND_MODULES: tuple[str, ...] = (
    "extract_frames",
    "synth",
    "info",
    "merge",
    "encode",
    "classify",
    "adapt",
    "localize",
    "score",
    "report",
    "query_lvlm",
    "describe",
    "select_tokens",
    "predict",
    "doctor",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zsar {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """zsar: zero-shot action recognition for video."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"zsar_cli.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
