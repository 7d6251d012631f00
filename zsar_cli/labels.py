"""Label files, prompt templates, description files, and the prompt sets built from them.

Input: a labels file (one label per line), an optional template file (one template per line) and
an optional descriptions file (JSON, or a `descriptions` Parquet artifact, DESIGN §3).
Output: `Prompt` records (label, text, kind) that an encoder turns into a `text_embeddings`
artifact; `label_weights` then folds each label's prompt embeddings into one classifier row.

Prompt kinds: `name` (the bare label), `template` (the label inside a template such as
"a video of {}."), `descriptor` ("{label}, which has {descriptor}", optionally inside templates)
and `random` (the same with random words as descriptors: a control, since much of the gain of
descriptors is known to come from ensembling alone).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zsar_cli.errors import ConfigError, InputError
from zsar_cli.outputs import note_input

# Re-exported: prompt wording lives in zsar_cli.prompts (the world CLIP records it).
from zsar_cli.prompts import DESCRIPTOR_PATTERN as DESCRIPTOR_PATTERN
from zsar_cli.prompts import VIDEO_TEMPLATES as VIDEO_TEMPLATES
from zsar_cli.prompts import label_text as label_text

TEMPLATE_CHOICES: tuple[str, ...] = ("none", "video")

# Vocabulary of the random-descriptor control: common concrete words unrelated to any dataset.
_RANDOM_WORDS_TEXT = """
    apple anchor basket bell bottle bridge brush button candle carpet chain chair cloud coin
    compass copper cotton crown curtain desk diamond drum engine feather fence flag flute forest
    garden glass glove hammer harbor helmet honey island jacket kettle ladder lantern leaf lemon
    marble meadow mirror needle notebook ocean orchard paper pencil pepper pillow planet pocket
    ribbon river rocket saddle salt shadow shelf silver socket spoon stone sugar table thunder
    ticket tower tunnel umbrella valley velvet violin wagon wallet whistle window winter wool
"""
RANDOM_WORDS: tuple[str, ...] = tuple(_RANDOM_WORDS_TEXT.split())


@dataclass(frozen=True)
class Description:
    """What a text LLM (or a person) wrote about one label (DESIGN §3 `descriptions`)."""

    label: str
    description: str = ""
    descriptors: tuple[str, ...] = ()
    start_question: str = ""
    end_question: str = ""


@dataclass(frozen=True)
class Prompt:
    """One text to encode, the label it stands for, and how it was made."""

    label: str
    text: str
    kind: str


# ---------------------------------------------------------------------------------------------
# Label and template files


def _lines(path: Path, what: str) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputError(f"{path}: no such {what} file")
    note_input(path)
    try:
        # utf-8-sig: the byte-order mark some editors write is not part of the first label.
        text = path.read_text(encoding="utf-8-sig")
    except PermissionError:
        raise InputError(f"{path}: cannot read the {what} file: permission denied") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what} file ({exc})") from None
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            # A label is printed in status lines and reports: a control character (an escape
            # sequence, a NUL) would reach the terminal or hide in an HTML page.
            odd = next((ch for ch in line if unicodedata.category(ch) == "Cc"), None)
            if odd is not None:
                raise InputError(
                    f"{path}:{number}: {line!r} holds the control character {odd!r}; "
                    f"a {what} file holds printable text"
                )
            out.append((number, line))
    return out


def read_labels(path: str | Path) -> list[str]:
    """Labels, one per line; blank lines and `#` comments ignored; duplicates rejected."""
    path = Path(path)
    seen: dict[str, int] = {}
    labels: list[str] = []
    for number, line in _lines(path, "labels"):
        if line in seen:
            raise InputError(
                f"{path}:{number}: duplicate label {line!r} (first on line {seen[line]})"
            )
        seen[line] = number
        labels.append(line)
    if not labels:
        raise InputError(f"{path}: labels file holds no labels (one label per line)")
    return labels


def check_labels(labels: Sequence[str], source: str = "labels") -> list[str]:
    """Validate labels given in code: non-empty, no blanks, no duplicates."""
    out = [str(label).strip() for label in labels]
    if not out:
        raise InputError(f"{source}: no labels given")
    if any(not label for label in out):
        raise InputError(f"{source}: empty label")
    dup = sorted({label for label in out if out.count(label) > 1})
    if dup:
        raise InputError(f"{source}: duplicate label(s) {', '.join(map(repr, dup))}")
    return out


def _check_template(template: str, where: str) -> str:
    rest = template.replace("{}", "", 1)
    if template.count("{}") != 1 or "{" in rest or "}" in rest:
        raise InputError(f"{where}: template {template!r} must contain exactly one '{{}}'")
    return template


def read_templates(path: str | Path) -> list[str]:
    """Templates, one per line, each with one `{}` (or `{label}`) where the label goes."""
    path = Path(path)
    out = []
    for number, line in _lines(path, "templates"):
        out.append(_check_template(line.replace("{label}", "{}"), f"{path}:{number}"))
    if not out:
        raise InputError(f"{path}: templates file holds no templates")
    return out


def resolve_templates(templates: str | Sequence[str] | None) -> list[str]:
    """`none`/None → no templates, `video` → the built-in ensemble, else a file or a list."""
    if templates is None:
        return []
    if isinstance(templates, str):
        if templates == "none":
            return []
        if templates == "video":
            return list(VIDEO_TEMPLATES)
        path = Path(templates)
        if not path.exists():
            raise ConfigError(
                f"--templates {templates!r}: not {' or '.join(TEMPLATE_CHOICES)} and no such file"
            )
        return read_templates(path)
    return [_check_template(t.replace("{label}", "{}"), "templates") for t in templates]


# ---------------------------------------------------------------------------------------------
# Descriptions


def _description(record: object, where: str, label: str | None = None) -> Description:
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected an object with label/descriptors, got {record!r:.60}")
    name = record.get("label", label)
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: record without a 'label'")
    descriptors = record.get("descriptors")
    descriptors = [] if descriptors is None else descriptors
    if not isinstance(descriptors, list) or not all(isinstance(d, str) for d in descriptors):
        raise InputError(f"{where}: 'descriptors' of {name!r} must be a list of strings")
    texts = {}
    for key in ("description", "start_question", "end_question"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: {key!r} of {name!r} must be a string")
        texts[key] = value or ""
    return Description(
        label=name.strip(),
        descriptors=tuple(d.strip() for d in descriptors if d.strip()),
        **texts,
    )


def load_descriptions(path: str | Path) -> dict[str, Description]:
    """Descriptions by label from JSON (a list of records or {label: record}) or Parquet."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such descriptions file")
    note_input(path)
    records: list[Description] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except PermissionError:
            raise InputError(f"{path}: cannot read it: permission denied") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable JSON descriptions file ({exc})") from None
        except RecursionError:  # [[[[...: json's recursion, not ours
            raise InputError(f"{path}: JSON nested too deeply for a descriptions file") from None
        if isinstance(data, dict) and "descriptions" in data:
            data = data["descriptions"]
        if isinstance(data, list):
            records = [_description(rec, f"{path}[{i}]") for i, rec in enumerate(data)]
        elif isinstance(data, dict):
            records = [_description(rec, f"{path}[{key!r}]", key) for key, rec in data.items()]
        else:
            raise InputError(f"{path}: expected a JSON list of records or {{label: record}}")
    else:
        from zsar_cli.artifacts import read_artifact

        table = read_artifact(path, "descriptions").table
        records = [_description(rec, f"{path} row {i}") for i, rec in enumerate(table.to_pylist())]
    out: dict[str, Description] = {}
    for rec in records:
        if rec.label in out:
            raise InputError(f"{path}: duplicate description for label {rec.label!r}")
        out[rec.label] = rec
    if not out:
        raise InputError(f"{path}: descriptions file holds no records")
    return out


# ---------------------------------------------------------------------------------------------
# Prompt sets


def descriptor_phrase(label: str, descriptor: str) -> str:
    return DESCRIPTOR_PATTERN.format(label=label_text(label), descriptor=descriptor)


def random_descriptors(labels: Sequence[str], k: int, seed: int = 0) -> dict[str, tuple[str, ...]]:
    """K random two-word descriptors per label, the same for a given seed and label list."""
    if k < 1:
        raise ConfigError(f"--random-descriptors {k}: must be >= 1")
    rng = np.random.default_rng(seed)
    words = np.array(RANDOM_WORDS)
    return {
        label: tuple(" ".join(rng.choice(words, size=2, replace=False)) for _ in range(k))
        for label in labels
    }


def build_prompts(
    labels: Sequence[str],
    templates: str | Sequence[str] | None = "none",
    descriptions: dict[str, Description] | None = None,
    random_descriptor_count: int = 0,
    seed: int = 0,
    descriptions_source: str = "descriptions",
) -> list[Prompt]:
    """Every prompt to encode, label by label, in label order.

    The core phrase of a label is its name, or one phrase per descriptor ("{label}, which has
    {descriptor}") when descriptions (or random descriptors) are given; templates, if any, wrap
    each core phrase. `descriptions_source` names the descriptions in errors (the option and
    file they came from).
    """
    labels = check_labels(labels)
    wrap = resolve_templates(templates)
    if descriptions is not None and random_descriptor_count:
        raise ConfigError("--descriptions and --random-descriptors are alternatives; give one")
    cores: dict[str, list[tuple[str, str]]] = {}
    if descriptions is not None:
        missing = [label for label in labels if label not in descriptions]
        if missing:
            raise InputError(
                f"{descriptions_source}: no description for label(s) "
                f"{', '.join(map(repr, missing[:5]))}" + (" ..." if len(missing) > 5 else "")
            )
        for label in labels:
            descs = descriptions[label].descriptors
            if not descs:
                raise InputError(f"{descriptions_source}: label {label!r} has no descriptors")
            cores[label] = [(descriptor_phrase(label, d), "descriptor") for d in descs]
    elif random_descriptor_count:
        rand = random_descriptors(labels, random_descriptor_count, seed)
        cores = {
            label: [(descriptor_phrase(label, d), "random") for d in rand[label]]
            for label in labels
        }
    else:
        cores = {label: [(label_text(label), "name")] for label in labels}
    prompts: list[Prompt] = []
    for label in labels:
        for core, kind in cores[label]:
            if not wrap:
                prompts.append(Prompt(label, core, kind))
                continue
            for template in wrap:
                prompts.append(
                    Prompt(label, template.format(core), "template" if kind == "name" else kind)
                )
    return prompts


def label_weights(
    labels: Sequence[str],
    prompt_labels: Sequence[str],
    prompt_kinds: Sequence[str],
    embeddings: np.ndarray,
) -> np.ndarray:
    """One classifier row per label from its prompts' L2-normalised embeddings, (L, D) float32.

    Name/template prompts are averaged and renormalised (CLIP's prompt ensemble). Descriptor
    prompts are averaged without renormalising, so a frame's score against the row is exactly
    the mean cosine similarity over the label's descriptors (classification by description).
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    prompt_labels = list(prompt_labels)
    rows = []
    for label in labels:
        idx = [i for i, name in enumerate(prompt_labels) if name == label]
        if not idx:
            raise InputError(f"no prompt embeddings for label {label!r}")
        mean = emb[idx].mean(axis=0)
        if all(prompt_kinds[i] in ("name", "template") for i in idx):
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        rows.append(mean)
    return np.stack(rows).astype(np.float32)
