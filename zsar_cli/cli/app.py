"""The `zsar` typer app. Each command lives in its own module and registers itself here.

Command modules import only typer/rich at module level; stages and backends (numpy, pyarrow,
torch, open_clip, transformers) are imported inside the command bodies, so `zsar --help` and
`zsar --version` stay fast. `app` holds every command (tests, recipes); the `zsar` program
(`main`) imports only the module of the command it runs.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from zsar_cli import __version__
from zsar_cli.pandas_probe import skip_pandas_probe


class ZsarGroup(TyperGroup):
    """The one error boundary of every command (see `cli.common.boundary`)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context (no public name)
        from zsar_cli.cli.common import boundary

        with boundary():
            return super().invoke(ctx)


def _new_app() -> typer.Typer:
    app = typer.Typer(
        cls=ZsarGroup,
        name="zsar",
        help="Zero-shot action recognition and localization for video, as composable stages "
        "over Parquet/Arrow artifacts.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Help is plain text: rich markup would eat "[ε, 1-ε]" or "zsar[ray]".
        rich_markup_mode=None,
    )
    app.callback()(_root)
    return app


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
# Command names whose module is not the name in snake_case.
_MODULE_OF = {"encode-text": "encode"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zsar {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """zsar: zero-shot action recognition for video."""


def build_app(modules: tuple[str, ...] = COMMAND_MODULES) -> typer.Typer:
    """The app with the commands of `modules` (all of them unless told)."""
    app = _new_app()
    for name in modules:
        importlib.import_module(f"zsar_cli.cli.{name}").register(app)
    return app


def __getattr__(name: str) -> Any:
    # `app`, with every command, is built on first use: `main` builds only the command it runs.
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_module(argv: list[str]) -> str | None:
    """The module of the command named first on a command line (None: no known command, or an
    option first: the whole app answers)."""
    if not argv or argv[0].startswith("-"):
        return None
    module = _MODULE_OF.get(argv[0], argv[0].replace("-", "_"))
    return module if module in COMMAND_MODULES else None


def main() -> None:
    # Only the command being run is imported (issue #17: `zsar extract-frames` started 0.09 s
    # later when all 15 command modules, with the synthetic world and the OpenAI client, were);
    # `zsar`, `zsar --help` and an unknown command get the whole app.
    module = command_module(sys.argv[1:])
    skip_pandas_probe()  # 0.13-0.18 s of every command where pandas is installed (its docstring)
    build_app(COMMAND_MODULES if module is None else (module,))()


if __name__ == "__main__":
    main()
