"""The queries of a `query-lvlm` run: each question asked of every frame (or clip), from
`--question` / `--questions` templates filled per label, the labels of `--mode choice`, and
ZEAL's per-label start/end questions of `--descriptions` inside the frame prompt; plus a key
standing for their texts in the output's cache key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zsar_cli.errors import InputError
from zsar_cli.prompts import label_text
from zsar_cli.stages.query_lvlm_config import QueryConfig


@dataclass(frozen=True)
class Query:
    """One question asked of every frame (or clip): the label it is about, its kind, the text."""

    label: str | None
    kind: str
    text: str
    template: str | None = None
    """The question template it was filled from (in-context examples are asked the same
    template with their own label); None for ZEAL's per-label start/end questions."""


def _read_questions(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such questions file")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    out = [ln for ln in lines if ln and not ln.startswith("#")]
    if not out:
        raise InputError(f"{path}: questions file holds no questions (one per line)")
    return out


def _fill(template: str, label: str, where: str) -> str:
    try:
        return template.format(label=label_text(label))  # read as words, as in choice
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"{where}: question {template!r} is not a valid template ({exc})"
        ) from None


def build_queries(config: QueryConfig) -> tuple[list[Query], list[str]]:
    """The queries of a run and the label list (options for choice mode)."""
    from zsar_cli.labels import load_descriptions, read_labels

    labels = read_labels(config.labels_file) if config.labels_file is not None else []
    if config.question is not None:
        templates, where = [config.question], "--question"
    elif config.questions_file is not None:
        templates, where = _read_questions(Path(config.questions_file)), config.questions_file
    else:
        templates, where = [], ""
    if config.mode == "choice":
        question = templates[0] if templates else config.choice_question
        return [Query(None, config.query_kind or "choice", question, question)], labels
    queries: list[Query] = []
    for template in templates:
        if labels:
            if "{label}" not in template:
                raise InputError(
                    f"{where}: question {template!r} has no {{label}} but --labels was given"
                )
            kind = config.query_kind or "class"
            queries += [Query(lab, kind, _fill(template, lab, where), template) for lab in labels]
        else:
            if "{label}" in template:
                raise InputError(f"{where}: question {template!r} uses {{label}}; give --labels")
            queries.append(Query(None, config.query_kind or "anomaly", template, template))
    if config.descriptions_file is not None:
        descriptions = load_descriptions(config.descriptions_file)
        wanted = labels or list(descriptions)
        missing = [lab for lab in wanted if lab not in descriptions]
        if missing:
            raise InputError(
                f"--descriptions {config.descriptions_file}: no description for label(s) "
                + ", ".join(map(repr, missing[:5]))
            )
        for lab in wanted:
            desc = descriptions[lab]
            for kind, question in (("start", desc.start_question), ("end", desc.end_question)):
                if not question:
                    raise InputError(
                        f"--descriptions {config.descriptions_file}: {lab!r} has no {kind}_question"
                    )
                text = config.frame_prompt.format(label=label_text(lab), question=question)
                queries.append(Query(lab, kind, text))
    return queries, labels


def queries_key(queries: Sequence[Query], labels: Sequence[str]) -> str:
    """Stand-in upstream key for the question texts (files change → key changes)."""
    h = hashlib.sha256()
    for q in queries:
        h.update(f"{q.label}\x1f{q.kind}\x1f{q.text}\x1e".encode())
    h.update("\x1d".join(labels).encode())
    return "queries:" + h.hexdigest()[:32]
