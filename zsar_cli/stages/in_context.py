"""In-context examples (`--examples FILE`) for `query-lvlm` (yes/no and choice) and `classify
--lvlm`: k labelled clips shown to the LVLM, each with its correct answer, before every query.

Input: a CSV file, one example per line — `source,label[,answer]` (a header line and `#`
comments allowed). `source` is a video file (relative paths from the file's folder) or
`FRAMES.parquet#VIDEO_ID`, a video of a frames artifact. In yes/no mode `answer` is yes or no
(the question asked is the query's template filled with the example's label); in choice mode the
answer is the label's option letter, so `answer` may be left out (if given it must repeat the
label). Output: per example its frames (one for frame-level prompts, the prompt's frame count for
clip-level ones) and the chat turns a backend puts before the query (`ContextTurn`).

An example video is never scored: the stages leave it out of their outputs and say so. The
examples' content (frames and texts) goes into the output's cache key.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zsar_cli.errors import ConfigError, InputError, ZsarError
from zsar_cli.outputs import note_input

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import ContextTurn, InContext
    from zsar_cli.runner import Unit

ANSWERS = {"yes": "Yes", "no": "No"}  # the assistant turn of a yes/no example
HEADER = ("source", "label", "answer")


@dataclass(frozen=True)
class Example:
    """One labelled clip: its video id, label, yes/no answer (None in choice mode) and frames."""

    video_id: str
    label: str
    answer: str | None
    images: tuple[np.ndarray, ...]
    where: str  # FILE:LINE, for messages


def read_rows(path: str | Path, mode: str) -> list[tuple[str, str, str | None, str]]:
    """(source, label, answer, FILE:LINE) per example line, validated for `mode`."""
    file = Path(path)
    note_input(file)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--examples {file}: cannot read ({exc})") from None
    rows = []
    for number, fields in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in fields]
        where = f"{file}:{number}"
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if number == 1 and tuple(c.lower() for c in cells[:3]) in (HEADER, HEADER[:2]):
            continue
        if len(cells) not in (2, 3) or not cells[1]:
            raise InputError(f"{where}: expected 'source,label[,answer]', got {','.join(cells)!r}")
        source, label = cells[0], cells[1]
        answer = cells[2] if len(cells) == 3 and cells[2] else None
        if mode == "yesno":
            if answer is None or answer.lower() not in ANSWERS:
                raise InputError(f"{where}: a yes/no example needs the answer yes or no")
            answer = answer.lower()
        elif answer is not None and answer != label:
            raise InputError(
                f"{where}: in choice mode the answer is the label's letter; leave the answer "
                f"out or repeat the label ({label!r})"
            )
        else:
            answer = None
        rows.append((source, label, answer, where))
    return rows


def _artifact_videos(path: Path, wanted: set[str]) -> dict[str, list[np.ndarray]]:
    """The decoded frames of the `wanted` videos of a frames artifact, read in one pass."""
    from zsar_cli.artifacts import iter_batches, iter_video_groups
    from zsar_cli.images import image_encoding
    from zsar_cli.stages.select_tokens import decode_video_frames

    meta, batches = iter_batches(str(path), "frames")
    found = {}
    for video in iter_video_groups(batches):
        video_id = video.column("video_id")[0].as_py()
        if video_id in wanted:
            frames, _ = decode_video_frames(video, image_encoding(meta.extra))
            found[video_id] = [f.image for f in frames]
    return found


def _pick(images: Sequence[np.ndarray], count: int) -> list[np.ndarray]:
    """`count` uniformly spaced images; one image = the middle one."""
    if count == 1 and images:
        return [images[len(images) // 2]]
    from zsar_cli.backends.lvlm_base import cap_frames

    return cap_frames(images, count)


def _frames_of_video(path: Path, count: int, where: str) -> tuple[str, list[np.ndarray]]:
    from zsar_cli.stages.extract_frames import ExtractConfig, decode_frames, resolve_inputs

    video = resolve_inputs([path])[0]
    try:
        images = [f.rgb for f in decode_frames(video, ExtractConfig(num_frames=count))]
    except ZsarError as exc:
        raise InputError(f"{where}: {exc}") from None
    return video.video_id, _pick(images, count)


def load_examples(path: str | Path, mode: str, frames_per_example: int) -> list[Example]:
    """The examples of `path` with `frames_per_example` frames each (decoded once per run)."""
    rows = read_rows(path, mode)
    base = Path(path).parent

    def resolved(source: str) -> tuple[Path, str | None]:
        """(file, video id in a frames artifact, or None for a video file)."""
        artifact, _, video_id = source.partition("#")
        if video_id and artifact.endswith((".parquet", ".arrow")):
            return (Path(artifact) if Path(artifact).is_absolute() else base / artifact), video_id
        return (Path(source) if Path(source).is_absolute() else base / source), None

    # Each frames artifact is read once for all the examples taken from it.
    wanted: dict[Path, set[str]] = {}
    for source, *_ in rows:
        file, video_id = resolved(source)
        if video_id is not None:
            wanted.setdefault(file, set()).add(video_id)
    videos = {file: _artifact_videos(file, ids) for file, ids in wanted.items()}
    examples = []
    for source, label, answer, where in rows:
        file, video_id = resolved(source)
        if video_id is not None:
            if video_id not in videos[file]:
                raise InputError(f"{where}: {file} has no video {video_id!r}")
            images = _pick(videos[file][video_id], frames_per_example)
        else:
            if not file.is_file():
                raise InputError(f"{where}: no such video {file}")
            video_id, images = _frames_of_video(file, frames_per_example, where)
        if not images:
            raise InputError(f"{where}: no frames could be read from {source}")
        examples.append(Example(video_id, label, answer, tuple(images), where))
    return examples


def examples_key(examples: Sequence[Example]) -> str:
    """A content hash of the examples (frames, labels, answers): part of the cache key."""
    digest = hashlib.sha256(b"in-context-v1")
    for ex in examples:
        digest.update(f"{ex.video_id}\0{ex.label}\0{ex.answer}\0{len(ex.images)}\0".encode())
        for image in ex.images:
            digest.update(f"{image.shape}".encode())
            digest.update(np.ascontiguousarray(image).tobytes())
    return "examples:" + digest.hexdigest()[:32]


def check_backend(lvlm: Any) -> InContext:
    """The backend as `InContext`, or a one-line error naming the model."""
    from zsar_cli.backends.lvlm_base import InContext

    if not isinstance(lvlm, InContext):
        raise ConfigError(f"--examples: the model {lvlm.spec} cannot take in-context examples")
    return lvlm


def yes_no_turns(examples: Sequence[Example], template: str | None) -> list[ContextTurn]:
    """The turns before a yes/no query built from `template` ({label} filled with each
    example's label; a question without {label} is asked as it is)."""
    from zsar_cli.backends.lvlm_base import ContextTurn

    if template is None:
        return []
    return [
        ContextTurn(ex.images, template.replace("{label}", ex.label), ANSWERS[ex.answer or "no"])
        for ex in examples
    ]


def choice_turns(
    examples: Sequence[Example], question: str, options: Sequence[str]
) -> list[ContextTurn]:
    """The turns before a multiple-choice query over `options` (in the query's order): each
    example whose label is an option, answered with that option's letter."""
    from zsar_cli.backends.lvlm_base import ContextTurn
    from zsar_cli.prompts import format_choice_prompt, option_letters

    letters = option_letters(len(options))
    prompt = format_choice_prompt(question, options)
    return [
        ContextTurn(ex.images, prompt, letters[list(options).index(ex.label)])
        for ex in examples
        if ex.label in options
    ]


def check_labels(examples: Sequence[Example], labels: Sequence[str], what: str) -> None:
    """Choice mode: every example's label must be one of the options."""
    for ex in examples:
        if ex.label not in labels:
            raise InputError(f"{ex.where}: label {ex.label!r} is not in {what}")


def ask_in_context(
    ask: Callable[..., list[list[dict[str, Any]]]],
    lvlm: Any,
    units: Sequence[Any],
    queries: Sequence[Any],
    labels: Sequence[str],
    config: Any,
    examples: Sequence[Example],
) -> list[list[dict[str, Any]]]:
    """query-lvlm's `ask(lvlm, units, queries, labels, config)` with the example turns before
    each query: the queries of one template share their turns, so each template is one block
    of `in_context` (per unit, per query, the values of its answer rows, as `ask` gives them)."""
    backend = check_backend(lvlm)
    out: list[list[dict[str, Any]]] = [[{} for _ in queries] for _ in units]
    by_template: dict[str | None, list[int]] = {}
    for i, query in enumerate(queries):
        by_template.setdefault(query.template, []).append(i)
    for template, members in by_template.items():
        if config.mode == "choice":
            turns = choice_turns(examples, queries[members[0]].text, labels)
        else:
            turns = yes_no_turns(examples, template)
        with backend.in_context(turns):
            asked = ask(lvlm, units, [queries[i] for i in members], labels, config)
        for u, values in enumerate(asked):
            for j, i in enumerate(members):
                out[u][i] = values[j]
    return out


def without_examples(
    units: Iterator[Unit], example_ids: set[str], excluded: list[str]
) -> Iterator[Unit]:
    """The units that are not in-context examples (an example is never scored); the left-out
    video ids are appended to `excluded`. Positions are kept, so checkpoints stay valid."""
    for unit in units:
        if unit.video_id in example_ids:
            excluded.append(unit.video_id or "")
        else:
            yield unit
