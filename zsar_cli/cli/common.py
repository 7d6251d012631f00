"""Shared CLI plumbing: error handling, consoles, batch exit codes, option helpers.

Commands stay thin: they build a stage Config, call the stage inside `cli_errors()`, and report.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console

from zsar_cli.errors import ZsarError

# Status and progress go to stderr; stdout is reserved for data (`-o -`, `--json`).
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def debug_enabled() -> bool:
    return os.environ.get("ZSAR_DEBUG", "") not in ("", "0", "false", "no")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a ZsarError (or a broken pipe / Ctrl-C) into one line and an exit code."""
    try:
        yield
    except ZsarError as exc:
        if debug_enabled():
            raise
        fail(_escape(str(exc)))
    except BrokenPipeError:
        # Downstream closed the pipe (`| head`): not an error of ours.
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # an unexpected failure still gets one line, not a traceback
        if debug_enabled():
            raise
        fail(f"{type(exc).__name__}: {_escape(str(exc))} (set ZSAR_DEBUG=1 for the traceback)")


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def finish_batch(total: int, failed: int, strict: bool, what: str = "videos") -> None:
    """Exit code policy for batch stages: 0 if some succeeded (warn), 1 if none did or --strict."""
    if failed == 0:
        return
    ok = total - failed
    err_console.print(f"[yellow]warning:[/] {failed} of {total} {what} failed (error rows written)")
    if strict or ok == 0:
        raise typer.Exit(1)


def show_progress() -> bool:
    """Progress bars only when a person watches stderr."""
    return sys.stderr.isatty() and not os.environ.get("ZSAR_NO_PROGRESS")


SHARD_OPTION = typer.Option(
    "--shard",
    help="Process a deterministic 1/N of the videos: I/N (0-based), or auto (Slurm array "
    "variables). -o is then a folder that receives part-IIIII-of-NNNNN.parquet.",
)
FORCE_OPTION = typer.Option(
    "--force", help="Overwrite an existing output made with other settings."
)


def report_up_to_date(output: str | None) -> None:
    """The one status line of a stage whose output was already complete (cache key matched)."""
    err_console.print(f"up to date: {output} (same settings and inputs; --force to redo)")


def dump_json(payload: Any) -> None:
    import json

    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
