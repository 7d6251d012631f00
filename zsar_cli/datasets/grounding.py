"""Free-text moment grounding annotations (Charades-STA) and query files.

Input: Charades-STA lines `VIDEO START END##SENTENCE` (seconds; `charades_sta_test.txt`), and
for `localize --queries` also `VIDEO##SENTENCE` (a query of one video) or a bare `SENTENCE`
(asked of every video).
Output: `GroundingGT` (one `Moment` per annotated line, in file order) and `QueryLine`s.

A sentence is used as written (whitespace collapsed): it is the query's identity from
`encode-text` (its text embedding's label) through `localize` (the interval's label) to
`score`, so it must not be re-cased or re-punctuated on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zsar_cli.datasets.common import _bad, _check_span, _float, _lines
from zsar_cli.errors import InputError

SEPARATOR = "##"


@dataclass(frozen=True)
class Moment:
    video_id: str
    start: float
    end: float
    sentence: str


@dataclass
class GroundingGT:
    """Annotated moments; a video may have many, and a sentence may repeat across videos."""

    moments: list[Moment]

    @property
    def videos(self) -> list[str]:
        return list(dict.fromkeys(m.video_id for m in self.moments))


@dataclass(frozen=True)
class QueryLine:
    video_id: str | None  # None: asked of every video
    sentence: str


def clean_sentence(text: str) -> str:
    return " ".join(text.split())


def is_grounding_line(line: str) -> bool:
    """Whether a line looks like Charades-STA's `VIDEO START END##SENTENCE`."""
    head, sep, tail = line.partition(SEPARATOR)
    parts = head.split()
    if not sep or len(parts) != 3 or not tail.strip():
        return False
    try:
        float(parts[1]), float(parts[2])
    except ValueError:
        return False
    return True


def read_charades_sta(path: str | Path) -> GroundingGT:
    """Charades-STA annotations: one moment per line, `VIDEO START END##SENTENCE`."""
    path = Path(path)
    moments: list[Moment] = []
    for number, line in _lines(path):
        head, sep, tail = line.partition(SEPARATOR)
        parts = head.split()
        if not sep or len(parts) != 3:
            raise _bad(path, number, "expected 'VIDEO START END##SENTENCE' (Charades-STA)")
        sentence = clean_sentence(tail)
        if not sentence:
            raise _bad(path, number, "empty sentence after '##'")
        start = _float(path, number, parts[1], "start")
        end = _float(path, number, parts[2], "end")
        _check_span(path, number, start, end)
        moments.append(Moment(parts[0], start, end, sentence))
    if not moments:
        raise InputError(f"{path}: no moments (Charades-STA lines 'VIDEO START END##SENTENCE')")
    return GroundingGT(moments)


def read_queries(path: str | Path) -> list[QueryLine]:
    """Queries for `localize --queries`: Charades-STA lines (their spans are not read),
    `VIDEO##SENTENCE`, or bare sentences (every video); duplicates kept once."""
    path = Path(path)
    out: dict[QueryLine, None] = {}
    for number, line in _lines(path):
        head, sep, tail = line.partition(SEPARATOR)
        if not sep:
            video, sentence = None, clean_sentence(line)
        else:
            parts = head.split()
            if len(parts) not in (1, 3):
                raise _bad(
                    path,
                    number,
                    "expected 'VIDEO##SENTENCE', 'VIDEO START END##SENTENCE' or a sentence",
                )
            video, sentence = parts[0], clean_sentence(tail)
        if not sentence:
            raise _bad(path, number, "empty sentence")
        out.setdefault(QueryLine(video, sentence))
    if not out:
        raise InputError(f"{path}: no queries (one sentence per line, or VIDEO##SENTENCE)")
    return list(out)


def query_sentences(path: str | Path) -> list[str]:
    """The distinct sentences of a query file, in first-seen order (what `encode-text` embeds
    when its labels file is a query file)."""
    return list(dict.fromkeys(q.sentence for q in read_queries(path)))
