"""`zsar merge FOLDER -o OUT`: the part files of a sharded run → one artifact."""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.common import FORCE_OPTION, err_console


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)


def merge(
    folder: Annotated[str, typer.Argument(help="Folder of part-IIIII-of-NNNNN.parquet files.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Merged artifact, or - (stdout).")],
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Concatenate a sharded output's parts in shard order (checks that every part is there)."""
    from zsar_cli.sharding import merge_parts

    parts, rows = merge_parts(folder, output, force=force)
    err_console.print(f"merged {parts} parts, {rows} rows → {output}")
