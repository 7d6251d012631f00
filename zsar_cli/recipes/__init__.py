"""Recipes: the seeds' headline tables, each rerun from a dataset on disk with one command.

    python -m zsar_cli.recipes NAME --root DATASET_DIR --out OUT_DIR [--clip SPEC] [--lvlm SPEC]
    make recipe-NAME ROOT=DATASET_DIR OUT=OUT_DIR [CLIP=SPEC] [LVLM=SPEC]

Each recipe is a fixed chain of ordinary `zsar` commands (printed as they run, so any step can be
rerun by hand; each reuses its output when it is up to date), then one table: the recipe's rows,
the figures measured here, and the published reference figures beside them, labelled as such.
The table is written as OUT/NAME/table.md and table.json and printed.

Input: a dataset laid out as it is distributed (`zsar synth --layout NAME` writes a world
stand-in of the same layout, which the test suite runs every recipe on). Output: the stages'
artifacts and the table under OUT/NAME/.

Recipes: `ucfcrime-selfres`, `ucf101`, `hmdb51`, `k600`, `thumos14-zeal`, `ucfcrime-auc`,
`charades-sta` (modules `classification`, `ucfcrime`, `temporal`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsar_cli.errors import InputError, ZsarError

DEFAULT_CLIP = "openclip:ViT-B-16/openai"
DEFAULT_LVLM = "hf:Qwen/Qwen2.5-VL-7B-Instruct"


class RecipeError(ZsarError):
    """A step of a recipe failed (its own message was printed above)."""


@dataclass
class Settings:
    root: Path
    out: Path
    clip: str = DEFAULT_CLIP
    lvlm: str = DEFAULT_LVLM
    device: str = "auto"
    describe_model: str | None = None  # None: hand-written --descriptions or the LVLM's LM
    descriptions: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # recipe-specific overrides (KEY=VALUE)

    def get(self, key: str, default: str) -> str:
        return self.extra.get(key, default)


@dataclass
class Row:
    name: str
    metric: str
    measured: float | None
    reference: str = "—"
    std: float | None = None  # over class splits

    def shown(self) -> str:
        if self.measured is None:
            return "—"
        value = f"{100 * self.measured:.1f}"
        return value + (f" ± {100 * self.std:.1f}" if self.std is not None else "")


@dataclass
class Table:
    recipe: str
    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| row | metric | measured here | published reference |",
            "|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(f"| {r.name} | {r.metric} | {r.shown()} | {r.reference} |")
        lines += ["", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines).rstrip() + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "title": self.title,
            "rows": [r.__dict__ for r in self.rows],
            "notes": self.notes,
        }


def zsar(*args: str | os.PathLike[str]) -> None:
    """Run one `zsar` command in this process (printed first, as a shell would show it)."""
    from typer.main import get_command

    from zsar_cli.cli.app import app

    argv = [str(a) for a in args]
    print("$ zsar " + " ".join(shlex.quote(a) for a in argv), file=sys.stderr, flush=True)
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = get_command(app).main(argv, prog_name="zsar", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # click usage errors and the like
        if getattr(exc, "exit_code", 1) == 0:
            return
        raise RecipeError(f"step failed ({exc}): zsar {' '.join(argv)}") from None
    if code not in (0, None):
        raise RecipeError(f"step failed (exit {code}): zsar {' '.join(argv)}")


def metric_summary(metrics: Path) -> dict[str, Any]:
    """The JSON summary `zsar score -o` stores in its metrics artifact."""
    from zsar_cli.artifacts import read_meta

    meta = read_meta(metrics)
    raw = meta.extra.get("summary")
    if raw is None:
        raise InputError(f"{metrics}: metrics artifact without a summary")
    return dict(json.loads(raw))


def find_file(root: Path, *names: str) -> Path:
    """The first of `names` found under root (at the top, else anywhere below)."""
    for name in names:
        if (root / name).is_file():
            return root / name
    for name in names:
        found = sorted(root.rglob(name))
        if found:
            return found[0]
    raise InputError(f"{root}: no {' or '.join(names)} (is --root the dataset folder?)")


def locate(root: Path, ids: Sequence[str], source: Path) -> list[Path]:
    """The video file of each id `source` names (a stem or file name), found anywhere under
    root (dataset lists name files, not paths); any not found is one InputError."""
    from zsar_cli.video import VIDEO_EXTENSIONS

    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            found.setdefault(path.name, path)
            found.setdefault(path.stem, path)
    missing = [v for v in ids if v not in found]
    if missing:
        raise InputError(
            f"{source}: {len(missing)} listed video(s) not found under {root} (e.g. {missing[0]})"
        )
    return [found[v] for v in ids]


def write_list(path: Path, rows: Sequence[tuple[Path, str | None]]) -> Path:
    """A `path,label` list file for extract-frames/classify (absolute paths)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "label"])
        for video, label in rows:
            writer.writerow([str(video.resolve()), label or ""])
    return path


RECIPES: dict[str, Callable[[Settings], Table]] = {}


def recipe(name: str) -> Callable[[Callable[[Settings], Table]], Callable[[Settings], Table]]:
    def register(fn: Callable[[Settings], Table]) -> Callable[[Settings], Table]:
        RECIPES[name] = fn
        return fn

    return register


def run_recipe(name: str, settings: Settings) -> Table:
    from zsar_cli.recipes import classification, temporal, ucfcrime  # noqa: F401  (registers)

    if name not in RECIPES:
        raise InputError(f"recipe {name!r}: unknown (known: {', '.join(sorted(RECIPES))})")
    settings.out = settings.out / name
    settings.out.mkdir(parents=True, exist_ok=True)
    table = RECIPES[name](settings)
    (settings.out / "table.md").write_text(table.markdown(), encoding="utf-8")
    (settings.out / "table.json").write_text(
        json.dumps(table.as_json(), indent=2) + "\n", encoding="utf-8"
    )
    return table
