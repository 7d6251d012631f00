"""`zsar info ARTIFACT`: kind, row count and provenance of an artifact."""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.common import dump_json, esc, out_console


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def info(
    artifact: Annotated[
        str, typer.Argument(help="Parquet artifact, folder of parts, or - (stdin).")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an artifact's kind, rows, columns and provenance (config, upstream cache keys)."""
    from zsar_cli.artifacts import describe

    summary = describe(artifact)
    if json_out:
        dump_json(summary)
        return
    for key, value in summary.items():
        out_console.print(f"[bold]{key}[/]: {esc(value)}", markup=True)
