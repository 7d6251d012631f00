"""Stage `query-lvlm`: ask a vision-language model yes/no, multiple-choice or free questions.

Input: a `frames` artifact, plus the queries — a question (`--question`) or a file of questions
(`--questions`), templates with `{label}` filled per label (`--labels`), and/or per-label start/end
questions from a descriptions file (`--descriptions`, asked inside ZEAL's frame prompt).
Output: an `answers` artifact, one row per (video, frame or clip, query): p_yes, yes_mass and
no_mass read from the next-token logits of one forward pass (mode yesno); one row per option with
its normalised letter probability in p_yes (mode choice); the generated text (mode generate).

`--level frame` asks about each frame alone; `--level clip` puts all frames of a segment (or of
the video when frames carry no segment) into one prompt, capped to `max_frames`. Upstream error
rows are carried forward as error rows, one per query. The run is resumable through the shared
runner: finished videos are checkpointed, a rerun with the same settings skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import build_table
from zsar_cli.backends import model_record, revision_key
from zsar_cli.images import decode_image, image_encoding
from zsar_cli.outputs import scoped
from zsar_cli.runner import RunSummary, run_stage
from zsar_cli.sharding import Shard
from zsar_cli.sharding import response_cache as shard_response_cache
from zsar_cli.stages.queries import Query as Query
from zsar_cli.stages.queries import build_queries as build_queries
from zsar_cli.stages.queries import queries_key as queries_key
from zsar_cli.stages.query_lvlm_config import DEFAULT_CHOICE_QUESTION as DEFAULT_CHOICE_QUESTION

# Re-exported: the config lives in a light module so the CLI can import it cheaply.
from zsar_cli.stages.query_lvlm_config import DEFAULT_MODEL as DEFAULT_MODEL
from zsar_cli.stages.query_lvlm_config import LEVELS as LEVELS
from zsar_cli.stages.query_lvlm_config import MODES as MODES
from zsar_cli.stages.query_lvlm_config import QUERY_KINDS as QUERY_KINDS
from zsar_cli.stages.query_lvlm_config import ZEAL_FRAME_PROMPT as ZEAL_FRAME_PROMPT
from zsar_cli.stages.query_lvlm_config import QueryConfig as QueryConfig
from zsar_cli.stages.shortlist import ChoiceOptions

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import LVLM
    from zsar_cli.engines import Engine
    from zsar_cli.stages.in_context import Example

SEGMENT_FIELD = pa.field("segment", pa.int32())
# Choice mode: which ordering of the options a row was asked in (--option-order).
ORDERING_FIELD = pa.field("ordering", pa.int32())


# ---------------------------------------------------------------------------------------------
# Answering one video


@dataclass
class _Frame:
    """One row of the frames artifact, its image still encoded."""

    frame_index: int
    timestamp: float | None
    segment: int | None
    data: bytes | None
    width: int
    height: int
    error: str | None


@dataclass
class _Unit:
    """One thing asked about: a frame (frame level) or a group of frames (clip level). Its
    images are decoded just before it is asked about and released right after, so a long
    video's frames are never all in memory at once."""

    frame_index: int | None
    timestamp: float | None
    segment: int | None
    members: list[_Frame]
    error: str | None = None
    images: list[np.ndarray] = field(default_factory=list)


def _frames(video: pa.Table) -> list[_Frame]:
    cols = video.to_pydict()
    n = video.num_rows
    segments = cols.get("segment", [None] * n)
    errors = cols.get("error", [None] * n)
    return [
        _Frame(
            cols["frame_index"][i],
            cols["timestamp"][i],
            segments[i],
            cols["image"][i],
            cols["width"][i],
            cols["height"][i],
            errors[i],
        )
        for i in range(n)
    ]


def _units(frames: Sequence[_Frame], level: str) -> list[_Unit]:
    if level == "frame":
        return [_Unit(f.frame_index, f.timestamp, f.segment, [f], f.error) for f in frames]
    # Clip level: one unit per segment (or per video), from its decodable frames.
    groups: dict[int | None, list[_Frame]] = {}
    for frame in frames:
        key = frame.segment if frame.segment is not None and frame.segment >= 0 else None
        groups.setdefault(key, []).append(frame)
    return [
        _Unit(None, None, segment if segment is not None else -1, members)
        for segment, members in groups.items()
    ]


def _decode(frame: _Frame, encoding: str) -> tuple[np.ndarray | None, str | None]:
    if frame.error is not None:
        return None, frame.error
    if frame.data is None:
        return None, "frame has no image"
    try:
        return decode_image(frame.data, encoding, frame.width, frame.height), None
    except Exception as exc:  # PIL raises several types for corrupt bytes
        return None, f"cannot decode frame image ({type(exc).__name__}: {exc})"


def _load(unit: _Unit, encoding: str, level: str, max_frames: int) -> None:
    """Decode a unit's images (clip level: its decodable frames, capped to `max_frames`)."""
    from zsar_cli.backends.lvlm_base import Clip, cap_frames

    decoded = [(m, *_decode(m, encoding)) for m in unit.members]
    if level == "frame":
        _, image, error = decoded[0]
        unit.error = error
        unit.images = [image] if image is not None else []
        return
    good = [(m, image) for m, image, error in decoded if error is None and image is not None]
    stamps = [m.timestamp for m, _ in good if m.timestamp is not None]
    unit.timestamp = float(np.mean(stamps)) if stamps else None
    unit.error = None if good else (decoded[0][2] or "no decodable frame")
    images = [image for _, image in good]
    if good and len(stamps) == len(good):
        # The frames' real times travel with them: a native video input tells the model these.
        images = Clip(images, stamps)
    unit.images = cap_frames(images, max_frames)


def units_per_call(config: QueryConfig) -> int:
    """Units decoded and asked about together: enough for the backend's batches, few enough
    that their decoded frames stay small (a one-hour video at 1 fps is 3,600 frames)."""
    return config.batch_size * (4 if config.level == "frame" else 1)


def _ask(
    lvlm: LVLM,
    good: Sequence[_Unit],
    queries: Sequence[Query],
    labels: Sequence[str],
    config: QueryConfig,
    examples: Sequence[Example] = (),
) -> list[list[dict[str, Any]]]:
    """`_ask_plain`, after the in-context `examples` if any (`in_context.ask_in_context`)."""
    if not examples:
        return _ask_plain(lvlm, good, queries, labels, config)
    from zsar_cli.stages.in_context import ask_in_context

    return ask_in_context(_ask_plain, lvlm, good, queries, labels, config, examples)


def _ask_plain(
    lvlm: LVLM,
    good: Sequence[_Unit],
    queries: Sequence[Query],
    labels: Sequence[str],
    config: QueryConfig,
) -> list[list[dict[str, Any]]]:
    """Per unit, per query, the values of its answer row(s): every query about every unit of
    the chunk in one call, so each unit's images are encoded once (`yes_no_many`)."""
    from zsar_cli.backends.lvlm_base import choice_many, generate_many, yes_no_many

    images = [u.images for u in good]
    texts = [q.text for q in queries]
    if config.mode == "yesno":
        scores = yes_no_many(lvlm, images, texts)
        return [
            [
                {
                    "p_yes": float(scores.p_yes[u, q]),
                    "yes_mass": float(scores.yes_mass[u, q]),
                    "no_mass": float(scores.no_mass[u, q]),
                }
                for q in range(len(queries))
            ]
            for u in range(len(good))
        ]
    if config.mode == "choice":
        probs = choice_many(lvlm, images, texts, labels)
        return [[{"probs": probs[u, q]} for q in range(len(queries))] for u in range(len(good))]
    answers = generate_many(lvlm, images, texts, config.max_new_tokens)
    return [[{"answer": a} for a in row] for row in answers]


def answer_video(
    lvlm: LVLM,
    video: pa.Table,
    encoding: str,
    queries: Sequence[Query],
    labels: Sequence[str],
    config: QueryConfig,
    examples: Sequence[Example] = (),
    choice: ChoiceOptions | None = None,
) -> pa.Table:
    """The `answers` rows of one video (all its frames or clips × all queries), after the
    in-context `examples` if any. Choice mode offers `choice`'s options for the video (default:
    `labels`), one row per option and ordering (`--option-order`)."""
    from zsar_cli.stages.option_order import choice_rows, shown, to_canonical
    from zsar_cli.stages.shortlist import NoOptions

    video_id = video.column("video_id")[0].as_py()
    units = _units(_frames(video), config.level)
    options: list[str] = []
    orderings: list[list[int]] = []
    options_error = None
    if config.mode == "choice":
        if choice is None:
            choice = ChoiceOptions(tuple(labels), config.option_order, config.option_seed)
        try:
            options, orderings = choice.for_video(video_id)
        except NoOptions as exc:
            options_error = str(exc)
    rows: dict[str, list[Any]] = {
        name: []
        for name in (
            "video_id",
            "frame_index",
            "timestamp",
            "segment",
            "label",
            "query_kind",
            "question",
            "p_yes",
            "yes_mass",
            "no_mass",
            "answer",
            "error",
            *(("ordering",) if config.mode == "choice" else ()),
        )
    }

    def add(unit: _Unit, label: str | None, kind: str, question: str, **values: Any) -> None:
        rows["video_id"].append(video_id)
        rows["frame_index"].append(unit.frame_index)
        rows["timestamp"].append(unit.timestamp)
        rows["segment"].append(unit.segment)
        rows["label"].append(label)
        rows["query_kind"].append(kind)
        rows["question"].append(question)
        for name in ("p_yes", "yes_mass", "no_mass", "answer", "ordering"):
            if name in rows:
                rows[name].append(values.get(name))
        rows["error"].append(unit.error)

    step = units_per_call(config)
    for start in range(0, len(units), step):
        chunk = units[start : start + step]
        for unit in chunk:
            if options_error is None:
                _load(unit, encoding, config.level, config.max_frames)
            else:
                unit.error = options_error
        good = [u for u in chunk if u.error is None]
        answered: dict[int, list[dict[str, Any]]] = {}
        if good and config.mode == "choice":
            # One ask per ordering; each mapped back to the options in canonical order.
            per_order = [
                _ask(lvlm, good, queries, shown(options, o), config, examples) for o in orderings
            ]
            for ui, unit in enumerate(good):
                answered[id(unit)] = [
                    {
                        "asked": np.stack(
                            [
                                to_canonical(per_order[k][ui][qi]["probs"], o)
                                for k, o in enumerate(orderings)
                            ]
                        )
                    }
                    for qi in range(len(queries))
                ]
        elif good:
            asked = _ask(lvlm, good, queries, labels, config, examples)
            answered = {id(u): values for u, values in zip(good, asked, strict=True)}
        for unit in chunk:
            unit.images = []  # released: only one chunk's frames are decoded at a time
            values_per_query = answered.get(id(unit))
            for qi, query in enumerate(queries):
                values = values_per_query[qi] if values_per_query is not None else {}
                if config.mode == "choice":
                    for k, label, letter, p in choice_rows(options, orderings, values.get("asked")):
                        add(unit, label, query.kind, query.text, p_yes=p, answer=letter, ordering=k)
                    if not options:  # no shortlist for this video: one error row per query
                        add(unit, None, query.kind, query.text, ordering=0)
                else:
                    add(unit, query.label, query.kind, query.text, **values)
    extra = [SEGMENT_FIELD, *([ORDERING_FIELD] if config.mode == "choice" else [])]
    return build_table("answers", rows, extra_fields=extra)


# ---------------------------------------------------------------------------------------------
# Run (streaming, checkpointed)


# The runner's summary: videos, failed, rows, resumed_videos, cache_key, skipped.
QuerySummary = RunSummary


def load_model(config: QueryConfig, responses: str | None = None) -> LVLM:
    """The LVLM of `config`; `responses`: where a served model (openai:) caches its answers."""
    from zsar_cli.backends import is_served, load_lvlm

    spec = config.model or DEFAULT_MODEL  # None only before validated()
    options: dict[str, Any] = {}
    if is_served(spec):
        from zsar_cli.backends.openai_lvlm import served_options

        options = served_options(config, responses)
    return load_lvlm(
        spec,
        device=config.device,
        dtype=config.dtype,
        trust_remote_code=config.trust_remote_code,
        max_pixels=config.max_pixels,
        max_frames=config.max_frames,
        batch_size=config.batch_size,
        **options,
    )


@dataclass(frozen=True)
class AnswerTask:
    """The answers of one video (zsar_cli.engines.VideoTask): what a worker runs, in this
    process or on a Ray actor."""

    config: QueryConfig
    queries: tuple[Query, ...]
    labels: tuple[str, ...]
    encoding: str
    responses: str | None = None  # a served model's response cache (beside the checkpoints)
    examples: tuple[Example, ...] = ()  # in-context examples before every query
    choice: ChoiceOptions | None = None  # choice mode: each video's options and orderings

    @property
    def uses_gpu(self) -> bool:
        from zsar_cli.backends import is_served

        return not is_served(self.config.model or DEFAULT_MODEL)

    def on_device(self, device: str) -> AnswerTask:
        return replace(self, config=replace(self.config, device=device))

    def load(self) -> LVLM:
        return load_model(self.config, self.responses)

    def facts(self, model: LVLM) -> dict[str, Any]:
        """The model that answered (its own spec, even when handed in by a caller) and, for
        clip prompts, the video input in effect (`auto` resolves per family)."""
        spec = getattr(model, "spec", None) or self.config.model or DEFAULT_MODEL
        facts: dict[str, Any] = dict(model_record(spec))
        if self.config.level == "clip":
            facts["video_input"] = self._video_input(model)
        return facts

    def _video_input(self, model: LVLM) -> str:
        from zsar_cli.backends.lvlm_base import set_video_input

        return set_video_input(model, self.config.video_input)

    def __call__(self, model: LVLM, video: pa.Table) -> pa.Table:
        if self.config.level == "clip":
            self._video_input(model)  # before the first clip, wherever the model was loaded
        return answer_video(
            model,
            video,
            self.encoding,
            self.queries,
            self.labels,
            self.config,
            self.examples,
            self.choice,
        )


@scoped
def run(
    frames: str | Path,
    output: str | Path,
    config: QueryConfig,
    lvlm: LVLM | None = None,
    on_video: Callable[[str], None] | None = None,
    shard: Shard | None = None,
    force: bool = False,
    engine: Engine | None = None,
) -> QuerySummary:
    """Stream a `frames` artifact video by video through the LVLM into an `answers` artifact.

    With `shard`, only that shard's videos, into a part file of the output folder; an output
    complete with the same settings is skipped, one made with other settings refused unless
    `force`; finished videos are checkpointed (zsar_cli.runner.run_stage). `engine`: where the
    videos are answered (default: this process; Ray: actors that each load the model once).
    """
    from zsar_cli.backends import is_served
    from zsar_cli.engines import executor

    cfg = config.validated()
    queries, labels = build_queries(cfg)
    provenance = cfg.provenance()
    served = is_served(cfg.model or DEFAULT_MODEL)
    extra: dict[str, Any] = {
        **model_record(cfg.model or DEFAULT_MODEL),
        "mode": cfg.mode,
        "level": cfg.level,
    }
    if served:
        extra["top_logprobs"] = cfg.top_logprobs  # the truncation p_yes was read under
    with executor(engine, lvlm, output=str(output)) as ex:
        meta, input_key, units = ex.units(str(frames), "frames", shard)
        upstream = [
            input_key,
            queries_key(queries, labels),
            *revision_key(cfg.model or DEFAULT_MODEL),
        ]
        examples: list[Example] = []
        excluded: list[str] = []
        if cfg.examples_file is not None:
            from zsar_cli.stages.in_context import (
                check_labels,
                examples_key,
                load_examples,
                without_examples,
            )

            per_example = 1 if cfg.level == "frame" else cfg.max_frames
            examples = load_examples(cfg.examples_file, cfg.mode, per_example)
            if cfg.mode == "choice" and cfg.labels_file is not None:
                check_labels(examples, labels, f"--labels {cfg.labels_file}")
            upstream.append(examples_key(examples))
            units = without_examples(units, {e.video_id for e in examples}, excluded)
        choice = None
        if cfg.mode == "choice":
            from zsar_cli.stages.shortlist import choice_options

            choice, shortlist_keys = choice_options(cfg, labels)
            upstream += shortlist_keys
        responses = None
        if served:
            responses = shard_response_cache(str(output), shard, "answers", provenance, upstream)
        task = AnswerTask(
            cfg,
            tuple(queries),
            tuple(labels),
            image_encoding(meta.extra),
            responses,
            tuple(examples),
            choice,
        )
        summary = run_stage(
            str(output),
            kind="answers",
            config=provenance,
            upstream=upstream,
            units=units,
            extra_metadata=lambda: {**extra, **ex.facts(task)},
            shard=shard,
            force=force,
            on_unit=None if on_video is None else lambda unit, _rows: on_video(unit.video_id or ""),
            **ex.runner_args(task),
        )
        summary.excluded = len(excluded)
        return summary
