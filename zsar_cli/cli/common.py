"""Shared CLI plumbing: error boundary, consoles, batch exit codes, the options that are not
config fields (--shard, --force, --labels, --engine).

Commands stay thin: `cli.build.config_command` turns their stage config into options, the body
calls the stage and reports; errors reach the one boundary installed on the app group.
"""

from __future__ import annotations

import contextlib
import os
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any, Literal, NoReturn

import typer
from rich.console import Console

from zsar_cli.errors import ZsarError


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters (an escape sequence, a NUL, a carriage
    return that rewrites the line) become "?"; line and paragraph separators a space."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\t":
            out.append(ch)
        elif category == "Cc":
            out.append("?")
        elif category in ("Zl", "Zp"):
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def esc(value: object) -> str:
    """A value (a path, a video id, a label, a message) inside a line with markup: printable,
    and its brackets escaped, so "[draft]" is shown and "[/x]" cannot break the line."""
    from rich.markup import escape

    return escape(printable(str(value)))


class SafeConsole(Console):
    """A rich console for text that holds names from the user's files.

    Markup is off unless a call asks for it (`markup=True`, values passed through `esc`): a
    label or path with brackets is printed as written, never parsed. Control characters in
    the strings printed are replaced (see `printable`).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)  # also for table cells, which hold labels
        super().__init__(**kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


# Status and progress go to stderr; stdout is reserved for data (`-o -`, `--json`).
err_console = SafeConsole(stderr=True, highlight=False)
out_console = SafeConsole(highlight=False)


def debug_enabled() -> bool:
    return os.environ.get("ZSAR_DEBUG", "") not in ("", "0", "false", "no")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h): a bug of zsar's, not the user's


def _one_line(text: str) -> str:
    """A message on one terminal line: control bytes and newlines never reach the terminal."""
    flat = " ".join(text.split())
    return "".join(ch if ch.isprintable() else "?" for ch in flat)


@contextlib.contextmanager
def boundary() -> Iterator[None]:
    """The error boundary of every command (installed once, on the app's group).

    A ZsarError → one red line, exit 1; usage errors are click's (exit 2); a broken pipe → 0;
    Ctrl-C → 130; anything else is a bug → "internal error: …", exit 70. ZSAR_DEBUG=1 re-raises
    with the traceback. Each command is also one io_scope: the inputs it reads are the ones its
    outputs may never overwrite.
    """
    from zsar_cli.outputs import io_scope
    from zsar_cli.quiet import quiet_libraries

    try:
        # Library warnings and bars stay out of zsar's stderr (ZSAR_VERBOSE=1 lets them through).
        with io_scope(), quiet_libraries():
            yield
    except ZsarError as exc:
        if debug_enabled():
            raise
        fail(_escape(_one_line(str(exc))))
    except BrokenPipeError:
        # Downstream closed the pipe (`| head`): not an error of ours.
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, SystemExit, typer.TyperException):
        raise  # usage errors (typer's own click) print themselves and exit 2
    except OSError as exc:  # the file system said no (permissions, read-only, full disk, ...)
        if debug_enabled():
            raise
        from zsar_cli.outputs import os_refusal

        fail(_escape(_one_line(os_refusal(exc))))
    except Exception as exc:  # a bug: one line that says so, and an exit code that says so
        if debug_enabled():
            raise
        fail(
            f"internal error: {type(exc).__name__}: {_escape(_one_line(str(exc)))}; rerun with "
            "ZSAR_DEBUG=1 and report it",
            INTERNAL_ERROR,
        )


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def finish_batch(total: int, failed: int, strict: bool, what: str = "videos") -> None:
    """Exit code policy for batch stages: 0 if some succeeded (warn), 1 if none did or --strict."""
    if failed == 0:
        return
    ok = total - failed
    err_console.print(
        f"[yellow]warning:[/] {failed} of {total} {what} failed (error rows written)", markup=True
    )
    if strict or ok == 0:
        raise typer.Exit(1)


def show_progress() -> bool:
    """Progress bars only when a person watches stderr."""
    return sys.stderr.isatty() and not os.environ.get("ZSAR_NO_PROGRESS")


SHARD_OPTION = typer.Option(
    "--shard",
    help="Process a deterministic 1/N of the videos: I/N (0-based), or auto (Slurm array "
    "variables; N from ZSAR_SHARDS when set). -o is then a folder that receives "
    "part-IIIII-of-NNNNN.parquet.",
)
FORCE_OPTION = typer.Option(
    "--force", help="Overwrite an existing output made with other settings."
)
# readable=False: an unreadable file is zsar's one-line error (exit 1), not a usage error.
LABELS_OPTION = typer.Option(
    "--labels", "-l", help="Labels file: one label per line, # comments.", readable=False
)
# zsar_cli.engines.ENGINES as a type, so a bad --engine is a usage error listing them.
EngineName = Literal["local", "ray"]


def report_up_to_date(output: str | None) -> None:
    """The one status line of a stage whose output was already complete (cache key matched)."""
    err_console.print(f"up to date: {output} (same settings and inputs; --force to redo)")


def dump_json(payload: Any) -> None:
    import json

    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
