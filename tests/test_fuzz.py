"""Seeded byte-level fuzzing of every input format zsar reads (issue 16), a slow test.

Each format starts from a valid file and runs ZSAR_FUZZ_CASES (default 200) mutated copies
through the real command, in-process (typer's CliRunner), each case under a time limit. A case
passes when:

- it ends in time (no hang) with exit 0 or 1 (2 only for usage, which no case is);
- nothing on stdout/stderr is a traceback, an "internal error" or a raw control byte;
- no temp or lock file is left beside the output;
- exit 0 never claims success with wrong content: the output is checked against the mutated
  input parsed by hand here (labels, descriptions, ground truth), or against the output of the
  unmutated input (a Parquet artifact whose data must be intact or refused), or for a video
  against the frames artifact's own invariants (every image decodes at its recorded size,
  timestamps finite and ordered);
- for the text formats, exit 1 only when the hand parse also refuses the file (a valid file is
  never turned away).

The counts (cases, exit 0, exit 1) are printed per format. Mutations: bit flips, random bytes,
inserted "interesting" bytes (NUL, newlines, quotes, separators, a BOM, an escape sequence,
huge and non-finite numbers), deleted and duplicated runs, truncation.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import signal
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import make_clip
from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app

pytestmark = pytest.mark.slow

CASES = int(os.environ.get("ZSAR_FUZZ_CASES", "200"))
SEED = int(os.environ.get("ZSAR_FUZZ_SEED", "16"))
INTERESTING: tuple[bytes, ...] = (
    b"\x00",
    b"\xff",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\t",
    b",",
    b'"',
    b"'",
    b"#",
    b"-",
    b"-1",
    b"0",
    b"9",
    b"1e308",
    b"1e999",
    b"NaN",
    b"Infinity",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"/",
    b"\\",
    b"\xef\xbb\xbf",
    b"\xc3",
    b"\x1b[31m",
    b"\x85",
    b"\xe2\x80\xa8",
)


# ---------------------------------------------------------------------------------------------
# Harness


class CaseTimeout(BaseException):
    """Raised in the main thread when a case overruns (a BaseException: no `except Exception`
    inside zsar turns it into an error line, so a hang is never mistaken for a clean exit)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(_signum: int, _frame: Any) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    # Half the cases change one thing: a file that still parses is where a wrong answer hides.
    for _ in range(1 if rng.random() < 0.5 else rng.randint(2, 6)):
        op = rng.randrange(8)
        pos = rng.randrange(len(out) + 1)
        at = min(pos, len(out) - 1)
        if op in (0, 1) and out:  # bit flip (twice as likely: the subtle one)
            out[at] ^= 1 << rng.randrange(8)
        elif op == 2 and out:
            out[at] = rng.randrange(256)
        elif op == 3:
            out[pos:pos] = rng.choice(INTERESTING)
        elif op == 4 and out:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 5 and out:
            start = rng.randrange(len(out))
            out[pos:pos] = out[start : start + rng.randint(1, 32)]
        elif op == 6 and rng.random() < 0.3:
            del out[pos:]
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(out)


@dataclass
class Tally:
    name: str
    cases: int = 0
    exit0: int = 0
    exit1: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"fuzz {self.name}: {self.cases} cases, exit 0: {self.exit0}, exit 1: {self.exit1}, "
            f"failures: {len(self.failures)}"
        )


def invoke(runner: Any, argv: list[object], seconds: float) -> Any:
    with time_limit(seconds):
        return runner.invoke(app, [str(a) for a in argv])


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def fuzz(
    name: str,
    original: bytes,
    target: Path,
    runner: Any,
    argv: list[object],
    check: Callable[[bytes, Any], str | None],
    capsys: Any,
    seconds: float = 20.0,
    cases: int = CASES,
) -> Tally:
    """Write each mutation of `original` to `target`, run `argv`, apply the generic checks and
    `check(mutated, result)` (a failure message or None)."""
    tally = Tally(name)
    rng = random.Random(f"{SEED}:{name}")
    for case in range(cases):
        data = mutate(original, rng)
        target.write_bytes(data)
        tally.cases += 1
        try:
            result = invoke(runner, argv, seconds)
        except CaseTimeout:
            tally.failures.append(f"case {case}: no answer within {seconds}s")
            continue
        problem = generic_problem(result)
        if problem is None:
            leftovers = hidden_leftovers(target.parent)
            problem = f"left {leftovers}" if leftovers else None
        if problem is None:
            problem = check(data, result)
        if result.exit_code == 0:
            tally.exit0 += 1
        elif result.exit_code == 1:
            tally.exit1 += 1
        if problem is not None:
            sample = data[:80]
            tally.failures.append(f"case {case}: {problem} (input began {sample!r})")
    with capsys.disabled():
        print(f"\n{tally.line()}")
    return tally


def generic_problem(result: Any) -> str | None:
    text = result.output
    if result.exit_code not in (0, 1):
        return f"exit {result.exit_code}: {text.strip()[-300:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"exception escaped: {type(result.exception).__name__}: {result.exception}"
    if "Traceback" in text or "internal error" in text:
        return f"traceback or internal error: {text.strip()[-300:]}"
    stderr = result.stderr
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        return f"a control character in the output: {text[-200:]!r}"
    if result.exit_code == 1 and not any(
        line.startswith(("error: ", "warning: ")) for line in stderr.splitlines()
    ):
        return f"exit 1 without an error line: {stderr[-200:]!r}"
    return None


def finish(tally: Tally) -> None:
    assert not tally.failures, "\n".join([tally.line(), *tally.failures[:20]])


# ---------------------------------------------------------------------------------------------
# Video


def test_fuzz_mp4(tmp_path, runner, capsys):
    clip = make_clip(tmp_path / "clip.mp4", duration=1.0, rate="10", size="64x48")
    original = clip.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    video = work / "v.mp4"
    out = work / "frames.parquet"

    def check(_data: bytes, result: Any) -> str | None:
        if not out.exists():
            return None if result.exit_code == 1 else "exit 0 without an output"
        table = read_artifact(out, "frames").table.to_pylist()
        out.unlink()
        if result.exit_code == 1:
            return None if all(r["error"] for r in table) else "exit 1 with decoded rows"
        if not 1 <= len(table) <= 3 or any(r["error"] for r in table):
            return f"exit 0 with {len(table)} rows, errors {[r['error'] for r in table]}"
        from zsar_cli.images import decode_image

        last_t, last_f = -1.0, -1
        for row in table:
            image = decode_image(row["image"], "jpeg", row["width"], row["height"])
            if image.shape != (row["height"], row["width"], 3):
                return f"image {image.shape} but recorded {row['height']}x{row['width']}"
            t = row["timestamp"]
            if not math.isfinite(t) or t < last_t or row["frame_index"] < last_f:
                return f"timestamps/frame numbers out of order: {t}, {row['frame_index']}"
            last_t, last_f = t, row["frame_index"]
        return None

    argv = ["extract-frames", video, "-n", "3", "-o", out]
    tally = fuzz("mp4", original, video, runner, argv, check, capsys, seconds=60)
    finish(tally)


# ---------------------------------------------------------------------------------------------
# Parquet artifacts


def _predictions(path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = ["RedCircle", "BlueSquare", "GreenTriangle"]
    cols: dict[str, list[Any]] = {k: [] for k in ("video_id", "label", "score", "rank")}
    cols |= {"true_label": [], "error": []}
    for v in range(12):
        scores = rng.random(3)
        for rank, i in enumerate(np.argsort(-scores), 1):
            cols["video_id"].append(f"vid{v:02d}")
            cols["label"].append(labels[i])
            cols["score"].append(float(scores[i]))
            cols["rank"].append(rank)
            cols["true_label"].append(labels[v % 3])
            cols["error"].append(None)
    write_artifact(build_table("predictions", cols), path, "predictions", {"seed": 0})


def test_fuzz_parquet_artifact(tmp_path, runner, capsys):
    """A predictions artifact through `score` and `info`: exit 0 only with the data intact."""
    source = tmp_path / "pred.parquet"
    _predictions(source)
    baseline_score = json.loads(runner.invoke(app, ["score", str(source), "--json"]).stdout)
    baseline_rows = read_artifact(source).table
    work = tmp_path / "work"
    work.mkdir()
    target = work / "pred.parquet"

    def check(_data: bytes, result: Any) -> str | None:
        if result.exit_code != 0:
            return None
        if json.loads(result.stdout) != baseline_score:
            return "exit 0 with other scores than the intact artifact"
        info = invoke(runner, ["info", target, "--json"], 20)
        problem = generic_problem(info)
        if problem is not None:
            return f"info: {problem}"
        if info.exit_code == 0 and json.loads(info.stdout)["rows"] != baseline_rows.num_rows:
            return "info: exit 0 with another row count"
        table = read_artifact(target).table.select(baseline_rows.schema.names)
        if not table.equals(baseline_rows.replace_schema_metadata(table.schema.metadata)):
            return "exit 0 but the table read differs from the intact one"
        return None

    tally = fuzz("parquet", source.read_bytes(), target, runner, ["score", target, "--json"],
                 check, capsys)  # fmt: skip
    finish(tally)


def test_fuzz_parquet_embeddings(tmp_path, runner, capsys):
    """An embeddings artifact through `classify`: exit 0 only with the same predictions."""
    from tests.fakes import unit_vector

    cols: dict[str, list[Any]] = {k: [] for k in ("video_id", "path", "label", "frame_index")}
    cols |= {"timestamp": [], "segment": [], "embedding": [], "error": []}
    for v in range(6):
        for f in range(3):
            cols["video_id"].append(f"vid{v}")
            cols["path"].append(f"/videos/vid{v}.mp4")
            cols["label"].append(None)
            cols["frame_index"].append(f)
            cols["timestamp"].append(f / 2)
            cols["segment"].append(0)
            cols["embedding"].append(unit_vector(f"{v}:{f}".encode()).tolist())
            cols["error"].append(None)
    source = tmp_path / "emb.parquet"
    write_artifact(
        build_table("embeddings", cols),
        source,
        "embeddings",
        {"model": "fake:clip"},
        extra_metadata={"model_spec": "fake:clip"},
    )
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\na blue square\na green triangle\n")
    argv = ["classify", None, "-l", labels, "-m", "fake:clip", "--json"]
    baseline = runner.invoke(app, [str(a) for a in [*argv[:1], source, *argv[2:]]])
    assert baseline.exit_code == 0, baseline.output
    work = tmp_path / "work"
    work.mkdir()
    target = work / "emb.parquet"

    def check(_data: bytes, result: Any) -> str | None:
        if result.exit_code == 0 and json.loads(result.stdout) != json.loads(baseline.stdout):
            return "exit 0 with other predictions than the intact artifact"
        return None

    argv[1] = target
    finish(fuzz("parquet embeddings", source.read_bytes(), target, runner, argv, check, capsys))


# ---------------------------------------------------------------------------------------------
# Labels


def hand_labels(data: bytes) -> list[str] | None:
    """The documented format: UTF-8 (a BOM allowed), one label per line, blank lines and `#`
    comments skipped, no duplicates, no control characters; None when invalid."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    labels: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(unicodedata.category(ch) == "Cc" for ch in line) or line in labels:
            return None
        labels.append(line)
    return labels or None


LABELS_TEXT = (
    b"# world shapes\na red circle\na red square\n\na green triangle\nApplyEyeMakeup\n"
    b"hand_stand-pushups\n  a blue circle  \n"
)


def test_fuzz_labels(tmp_path, runner, capsys):
    from zsar_cli.labels import label_text

    work = tmp_path / "work"
    work.mkdir()
    labels = work / "labels.txt"
    out = work / "text.parquet"

    def check(data: bytes, result: Any) -> str | None:
        expected = hand_labels(data)
        if result.exit_code == 1:
            if out.exists():
                return "exit 1 left an output"
            return None if expected is None else f"refused valid labels {expected}"
        if expected is None:
            return "exit 0 for labels the format refuses"
        art = read_artifact(out, "text_embeddings")
        out.unlink()
        got = art.meta.extra_json("labels")
        rows = art.table.to_pydict()
        if got != expected or rows["label"] != expected:
            return f"labels {got} != hand parse {expected}"
        if rows["text"] != [label_text(label) for label in expected]:
            return f"prompts {rows['text']} != labels {expected}"
        return None

    argv = ["encode-text", "-l", labels, "-m", "fake:clip", "--templates", "none", "-o", out]
    finish(fuzz("labels", LABELS_TEXT, labels, runner, argv, check, capsys, seconds=10))


# ---------------------------------------------------------------------------------------------
# Descriptions


DESC_LABELS = ("a red circle", "a blue square", "a green triangle")


def _descriptions_json() -> bytes:
    records = [
        {
            "label": label,
            "description": f"{label} on a plain gray background",
            "descriptors": [f"{label.split()[1]} color", f"the shape of {label}", "sharp edges"],
            "start_question": f"Does {label} appear?",
            "end_question": f"Is {label} leaving?",
        }
        for label in DESC_LABELS
    ]
    return json.dumps(records, indent=1).encode()


def hand_descriptions(data: bytes) -> dict[str, list[str]] | None:
    """Descriptors by label as the documented JSON says: a list of records or {label: record}
    (optionally under "descriptions"); each record an object with a non-empty string label,
    descriptors a list of strings, text fields strings; labels unique."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(doc, dict) and "descriptions" in doc:
        doc = doc["descriptions"]
    if isinstance(doc, list):
        pairs = [(None, rec) for rec in doc]
    elif isinstance(doc, dict):
        pairs = list(doc.items())
    else:
        return None
    out: dict[str, list[str]] = {}
    for key, rec in pairs:
        if not isinstance(rec, dict):
            return None
        label = rec.get("label", key)
        if not isinstance(label, str) or not label.strip() or label.strip() in out:
            return None
        descriptors = rec.get("descriptors")
        descriptors = [] if descriptors is None else descriptors
        if not isinstance(descriptors, list) or not all(isinstance(d, str) for d in descriptors):
            return None
        for text_key in ("description", "start_question", "end_question"):
            if rec.get(text_key) is not None and not isinstance(rec.get(text_key), str):
                return None
        out[label.strip()] = [d.strip() for d in descriptors if d.strip()]
    return out or None


def test_fuzz_descriptions(tmp_path, runner, capsys):
    from zsar_cli.labels import descriptor_phrase

    work = tmp_path / "work"
    work.mkdir()
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(DESC_LABELS) + "\n")
    desc = work / "descriptions.json"
    out = work / "text.parquet"

    def check(data: bytes, result: Any) -> str | None:
        parsed = hand_descriptions(data)
        usable = parsed is not None and all(parsed.get(label) for label in DESC_LABELS)
        if result.exit_code == 1:
            if out.exists():
                return "exit 1 left an output"
            return None if not usable else "refused valid descriptions"
        if not usable or parsed is None:
            return "exit 0 for descriptions the format refuses"
        rows = read_artifact(out, "text_embeddings").table.to_pydict()
        out.unlink()
        expected = [descriptor_phrase(lab, d) for lab in DESC_LABELS for d in parsed[lab]]
        if rows["text"] != expected:
            return f"prompts {rows['text'][:3]} != hand parse {expected[:3]}"
        return None

    argv = ["encode-text", "-l", labels, "--descriptions", desc, "-m", "fake:clip"]
    argv += ["--templates", "none", "-o", out]
    tally = fuzz("descriptions", _descriptions_json(), desc, runner, argv, check, capsys, 10)
    finish(tally)


# ---------------------------------------------------------------------------------------------
# Ground truth: one valid file per format, the predictions it scores, and a hand parse


CLASSES = ("RedCircle", "BlueSquare", "GreenTriangle")
VIDEOS = tuple(f"vid{v:02d}" for v in range(9))


def _interval_predictions(path: Path) -> None:
    cols: dict[str, list[Any]] = {k: [] for k in ("video_id", "label", "t_start", "t_end")}
    cols["score"] = []
    for v, vid in enumerate(VIDEOS):
        for k in range(2):
            cols["video_id"].append(vid)
            cols["label"].append(CLASSES[(v + k) % 3])
            cols["t_start"].append(1.0 + 3 * k)
            cols["t_end"].append(3.5 + 3 * k)
            cols["score"].append(0.9 - 0.3 * k)
    write_artifact(build_table("intervals", cols), path, "intervals", {"seed": 0})


def _frame_scores(path: Path) -> None:
    cols: dict[str, list[Any]] = {k: [] for k in ("video_id", "frame_index", "timestamp")}
    cols |= {"label": [], "score": []}
    for v, vid in enumerate(VIDEOS):
        for f in range(0, 60, 3):
            cols["video_id"].append(vid)
            cols["frame_index"].append(f)
            cols["timestamp"].append(f / 30)
            cols["label"].append(None)
            cols["score"].append(float(10 <= f <= 30) * 0.8 + 0.1 * (v % 2))
    write_artifact(build_table("frame_scores", cols), path, "frame_scores", {"seed": 0})


def _class_predictions(path: Path) -> None:
    cols: dict[str, list[Any]] = {k: [] for k in ("video_id", "label", "score", "rank")}
    cols |= {"true_label": [], "error": []}
    for v, vid in enumerate(VIDEOS):
        for rank in range(1, 4):
            cols["video_id"].append(vid)
            cols["label"].append(CLASSES[(v + rank - 1) % 3])
            cols["score"].append(1.0 / rank)
            cols["rank"].append(rank)
            cols["true_label"].append(None)
            cols["error"].append(None)
    write_artifact(build_table("predictions", cols), path, "predictions", {"seed": 0})


def _stem(name: str) -> str:
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    video_exts = {"mp4", "avi", "mkv", "webm", "mov", "mpg", "mpeg", "m4v", "flv", "wmv"}
    return stem if dot and stem and ext.lower() in video_exts else base


def _text_lines(data: bytes) -> list[str] | None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] != "#"]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _key(label: str) -> str:
    import re

    return re.sub(r"[\s_\-]+", "", label.strip().lower())


def hand_list(data: bytes) -> dict[str, str] | None:
    lines = _text_lines(data)
    if lines is None:
        return None
    out: dict[str, str] = {}
    for line in lines:
        try:
            cells = next(csv.reader([line]))
        except csv.Error:
            return None
        if [c.strip().lower() for c in cells] == ["video", "label"]:
            continue
        if len(cells) != 2 or not cells[1].strip():
            return None
        vid, label = _stem(cells[0]), cells[1].strip()
        if out.get(vid, label) != label:
            return None
        out[vid] = label
    return out or None


def hand_thumos(files: dict[str, bytes]) -> set[tuple[str, str, float, float]] | None:
    """{file name: content} of a THUMOS14 folder → (video, class, start, end) positives."""
    out: set[tuple[str, str, float, float]] = set()
    for name, data in files.items():
        label = name[: -len("_test.txt")]
        lines = _text_lines(data)
        if lines is None:
            return None
        for line in lines:
            parts = line.split()
            if len(parts) != 3:
                return None
            start, end = _number(parts[1]), _number(parts[2])
            if start is None or end is None or start < 0 or end < start:
                return None
            if _key(label) != "ambiguous":
                out.add((_stem(parts[0]), label, start, end))
    return out


def hand_activitynet(data: bytes) -> set[tuple[str, str, float, float]] | None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("database"), dict):
        return None
    out: set[tuple[str, str, float, float]] = set()
    if not doc["database"]:
        return None
    for vid, entry in doc["database"].items():
        if not isinstance(entry, dict):
            return None
        if entry.get("duration") is not None:
            if isinstance(entry["duration"], bool) or not isinstance(
                entry["duration"], (int, float, str)
            ):
                return None
            try:
                float(entry["duration"])
            except ValueError:
                return None
        anns = entry.get("annotations", [])
        if not isinstance(anns, list):
            return None
        for ann in anns:
            label = ann.get("label") if isinstance(ann, dict) else None
            seg = ann.get("segment") if isinstance(ann, dict) else None
            if not isinstance(label, str) or not label:
                return None
            if not isinstance(seg, list) or len(seg) != 2:
                return None
            try:
                start, end = float(seg[0]), float(seg[1])
            except (TypeError, ValueError):
                return None
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
                return None
            out.add((vid, label, start, end))
    return out


def hand_ucf_crime(data: bytes) -> dict[str, list[tuple[int, int]]] | None:
    lines = _text_lines(data)
    if lines is None:
        return None
    out: dict[str, list[tuple[int, int]]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 6:
            return None
        vid = _stem(parts[0])
        if vid in out:
            return None
        try:
            bounds = [int(p) for p in parts[2:]]
        except ValueError:
            return None
        spans = []
        for start, end in (bounds[0:2], bounds[2:4]):
            if start == -1 and end == -1:
                continue
            if start < 1 or end < 1 or end < start:
                return None
            spans.append((start - 1, end - 1))
        out[vid] = spans
    return out or None


def hand_ucf101(classind: bytes, testlist: bytes) -> dict[str, str] | None:
    ind = _text_lines(classind)
    lines = _text_lines(testlist)
    if ind is None or lines is None:
        return None
    classes: list[str] = []
    for line in ind:
        parts = line.split()
        if len(parts) != 2:
            return None
        try:
            index = int(parts[0])
        except ValueError:
            return None
        if index != len(classes) + 1:
            return None
        classes.append(parts[1])
    if not classes:
        return None
    by_key = {_key(c): c for c in classes}
    out: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) not in (1, 2):
            return None
        rel = parts[0].replace("\\", "/")
        if "/" not in rel:
            return None
        label = by_key.get(_key(rel.split("/")[-2]))
        if label is None:
            return None
        if len(parts) == 2:
            try:
                index = int(parts[1])
            except ValueError:
                return None
            if not 1 <= index <= len(classes) or classes[index - 1] != label:
                return None
        vid = _stem(rel)
        if out.get(vid, label) != label:
            return None
        out[vid] = label
    return out or None


def hand_hmdb51(files: dict[str, bytes]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for name, data in sorted(files.items()):
        label = name[: -len("_test_split1.txt")]
        lines = _text_lines(data)
        if lines is None:
            return None
        part: dict[str, str] = {}
        for line in lines:
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                return None
            if parts[1] == "2":
                part[_stem(parts[0])] = label
        for vid, lab in part.items():
            if out.get(vid, lab) != lab:
                return None
            out[vid] = lab
    return out or None


def _zsar_gt(path: Path, fmt: str) -> Any:
    from zsar_cli.datasets import load_ground_truth

    return load_ground_truth(path, fmt)[1]


@dataclass
class GTCase:
    """A ground-truth format: its files, the predictions to score, and its hand parse."""

    fmt: str
    predictions: Callable[[Path], None]
    files: dict[str, bytes]
    gt_path: str  # relative to the case folder: the file or the folder --gt names
    parse: Callable[[dict[str, bytes]], Any]
    zsar: Callable[[Any], Any]
    overlaps: Callable[[Any], bool]


def _thumos_files() -> dict[str, bytes]:
    files = {}
    for c, label in enumerate(CLASSES):
        lines = [f"{vid} {1.0 + c:.1f} {3.5 + c:.1f}" for v, vid in enumerate(VIDEOS) if v % 3 == c]
        files[f"{label}_test.txt"] = ("\n".join(lines) + "\n").encode()
    files["Ambiguous_test.txt"] = b"vid00 7.0 8.0\n"
    return files


def _anet_files() -> dict[str, bytes]:
    database = {
        vid: {
            "subset": "validation",
            "duration": 12.0,
            "annotations": [{"label": CLASSES[v % 3], "segment": [1.0, 3.5 + v % 2]}],
        }
        for v, vid in enumerate(VIDEOS)
    }
    return {"gt.json": json.dumps({"version": "1.3", "database": database}, indent=1).encode()}


def _loc_set(gt: Any) -> set[tuple[str, str, float, float]]:
    return {
        (v, lab, float(s), float(e))
        for v, lab, s, e in zip(gt.video_id, gt.label, gt.t_start, gt.t_end, strict=True)
    }


GT_CASES = {
    "list": GTCase(
        "list",
        _class_predictions,
        {
            "gt.csv": (
                "video,label\n"
                + "".join(f"{vid}.mp4,{CLASSES[v % 3]}\n" for v, vid in enumerate(VIDEOS))
            ).encode()
        },
        "gt.csv",
        lambda f: hand_list(f["gt.csv"]),
        lambda gt: gt.labels,
        lambda parsed: bool(set(parsed) & set(VIDEOS)),
    ),
    "ucf101": GTCase(
        "ucf101",
        _class_predictions,
        {
            "classInd.txt": "".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)).encode(),
            "testlist01.txt": "".join(
                f"{CLASSES[v % 3]}/{vid}.avi\n" for v, vid in enumerate(VIDEOS)
            ).encode(),
        },
        ".",
        lambda f: hand_ucf101(f["classInd.txt"], f["testlist01.txt"]),
        lambda gt: gt.labels,
        lambda parsed: bool(set(parsed) & set(VIDEOS)),
    ),
    "hmdb51": GTCase(
        "hmdb51",
        _class_predictions,
        {
            f"{c}_test_split1.txt": "".join(
                f"{vid}.avi {2 if v % 3 == i else 0}\n" for v, vid in enumerate(VIDEOS)
            ).encode()
            for i, c in enumerate(CLASSES)
        },
        ".",
        hand_hmdb51,
        lambda gt: gt.labels,
        lambda parsed: bool(set(parsed) & set(VIDEOS)),
    ),
    "thumos14": GTCase(
        "thumos14",
        _interval_predictions,
        _thumos_files(),
        ".",
        hand_thumos,
        _loc_set,
        lambda parsed: bool({v for v, *_ in parsed} & set(VIDEOS)),
    ),
    "activitynet": GTCase(
        "activitynet",
        _interval_predictions,
        _anet_files(),
        "gt.json",
        lambda f: hand_activitynet(f["gt.json"]),
        _loc_set,
        lambda parsed: True,  # every listed video counts, annotated or not
    ),
    "ucf_crime": GTCase(
        "ucf_crime",
        _frame_scores,
        {
            "ann.txt": "".join(
                f"{vid}.mp4 Abuse {11 + v} {31 + v} -1 -1\n"
                if v % 2
                else f"{vid}.mp4 Normal -1 -1 -1 -1\n"
                for v, vid in enumerate(VIDEOS)
            ).encode()
        },
        "ann.txt",
        lambda f: hand_ucf_crime(f["ann.txt"]),
        lambda gt: gt.spans,
        lambda parsed: bool(set(parsed) & set(VIDEOS)),
    ),
}


@pytest.mark.parametrize("fmt", list(GT_CASES))
def test_fuzz_ground_truth(tmp_path, runner, capsys, fmt):
    case = GT_CASES[fmt]
    pred = tmp_path / "pred.parquet"
    case.predictions(pred)
    folder = tmp_path / "gt"
    folder.mkdir()
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    gt = folder / case.gt_path
    ok = runner.invoke(app, ["score", str(pred), "--gt", str(gt), "--gt-format", fmt, "--json"])
    assert ok.exit_code == 0, ok.output
    assert case.zsar(_zsar_gt(gt, fmt)) == case.parse(case.files)
    names = sorted(case.files)
    rng = random.Random(f"{SEED}:gt:{fmt}")
    tally = Tally(f"ground truth {fmt}")
    for index in range(CASES):
        mutated = dict(case.files)
        victim = rng.choice(names)
        mutated[victim] = mutate(case.files[victim], rng)
        for name, data in mutated.items():
            (folder / name).write_bytes(data)
        tally.cases += 1
        try:
            argv = ["score", pred, "--gt", gt, "--gt-format", fmt, "--json"]
            result = invoke(runner, argv, 20)
        except CaseTimeout:
            tally.failures.append(f"case {index}: no answer within 20s")
            continue
        tally.exit0 += result.exit_code == 0
        tally.exit1 += result.exit_code == 1
        parsed = case.parse(mutated)
        problem = generic_problem(result)
        if problem is None and result.exit_code == 0:
            if parsed is None:
                problem = "exit 0 for ground truth the format refuses"
            elif case.zsar(_zsar_gt(gt, fmt)) != parsed:
                problem = "zsar read other annotations than the file holds"
            else:
                problem = _metrics_problem(json.loads(result.stdout))
        elif (
            problem is None
            and parsed is not None
            and case.overlaps(parsed)
            and "no video in common" not in result.stderr
        ):
            problem = f"refused valid ground truth: {result.stderr.strip()[-200:]}"
        if problem is not None:
            tally.failures.append(f"case {index} ({victim}): {problem}: {mutated[victim][:80]!r}")
    with capsys.disabled():
        print(f"\n{tally.line()}")
    finish(tally)


FRACTIONS = ("top1", "top5", "mean_class", "per_class_recall", "mAP", "average_mAP", "ap")


def _metrics_problem(summary: dict[str, Any]) -> str | None:
    """Scores are fractions in [0, 1] (or null when undefined), never NaN."""

    def values(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            for item in node.values():
                yield from values(item)
        else:
            yield node

    for key in (*FRACTIONS, "roc_auc"):
        for value in values(summary.get(key)):
            if value is not None and not (isinstance(value, float | int) and 0 <= value <= 1):
                return f"metric {key} = {value!r}"
    return None


def test_hand_parsers_agree_with_zsar_on_the_valid_files(tmp_path):
    """The oracles themselves: on each unmutated file, hand parse == zsar's reading."""
    for fmt, case in GT_CASES.items():
        folder = tmp_path / fmt
        folder.mkdir()
        for name, data in case.files.items():
            (folder / name).write_bytes(data)
        assert case.zsar(_zsar_gt(folder / case.gt_path, fmt)) == case.parse(case.files), fmt
    assert hand_labels(LABELS_TEXT) == [
        "a red circle",
        "a red square",
        "a green triangle",
        "ApplyEyeMakeup",
        "hand_stand-pushups",
        "a blue circle",
    ]
    parsed = hand_descriptions(_descriptions_json())
    assert parsed is not None and sorted(parsed) == sorted(DESC_LABELS)
    assert hand_list(b"video,label\nx.mp4,A\n") == {"x": "A"}
