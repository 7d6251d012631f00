"""`zsar doctor --model SPEC`: what an LVLM will score and whether it sees a known answer.

Input: a model spec. Output: a report on stdout (rich, or `--json`); exit 1 with one line when a
known-answer check fails. Options come from DoctorConfig.
"""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import dump_json, err_console, esc, out_console
from zsar_cli.stages.doctor_config import DoctorConfig


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


@config_command
def doctor(
    config: DoctorConfig,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check an LVLM before a dataset run: family, device, single-token spellings, tokens per
    frame and clip, native video, and a known-answer check (shape vs empty frames)."""
    from zsar_cli.stages.doctor import diagnose

    report = diagnose(config)
    if json_out:
        dump_json(report.as_dict())
    else:
        rows = [
            ("model", report.spec),
            ("family", report.family),
            ("device / dtype", f"{report.device} / {report.dtype}"),
            ("revision", report.revision or "(unresolved)"),
            ("yes spellings", ", ".join(map(repr, report.yes_spellings)) or "none"),
            ("no spellings", ", ".join(map(repr, report.no_spellings)) or "none"),
            (
                "option letters",
                " ".join(f"{k}:{len(v)}" for k, v in report.letters.items()) or "none",
            ),
            ("tokens / 640x360 frame", str(report.tokens_per_frame)),
            ("tokens / 4-frame clip", str(report.tokens_per_clip)),
            (
                "video input",
                report.video_input + (f" ({report.video_note})" if report.video_note else ""),
            ),
        ]
        for check in report.checks:
            verdict = "separates" if check.separates else "DOES NOT separate"
            rows.append(
                (
                    f"known answer, {check.level}",
                    f"p_yes shape {check.with_shape:.3f} vs empty {check.empty:.3f}: {verdict}",
                )
            )
        for key, value in rows:
            out_console.print(f"[bold]{esc(key)}[/]: {esc(value)}", markup=True, soft_wrap=True)
    if not report.ok:
        failed = [c.level for c in report.checks if not c.separates]
        err_console.print(
            f"[red]{esc(report.spec)}: known-answer check failed ({', '.join(failed)}): p_yes "
            f"does not separate a large shape from an empty frame by {config.margin}[/]",
            markup=True,
        )
        raise typer.Exit(1)
