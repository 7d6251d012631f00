"""Stage `select-tokens`: Self-Reflective Sampling (Self-ReS) of an LVLM's visual tokens.

Input: a `frames` artifact sampled densely in segments (`extract-frames --segments R
--frames-per-segment S`; or any frames with `--segments R`, which splits each video's frames into
R equal consecutive paths), and a question. For `--scorer clip`: an `embeddings` artifact made with
`encode --patch-tokens` instead (no LVLM is loaded).
Output: a `tokens` artifact, one row per kept visual token: video_id, segment (reflection path),
frame_index, token_index (position among the frame's visual tokens), score, embedding (the token
as the LVLM's language model receives it, float16 by default), plus timestamp, width, height and
label (the `{label}` a question was filled with; null for a single question).

Method (DESIGN §4): for each reflection path, the LVLM runs once on [prompt prefix ⊕ the path's
visual tokens ⊕ question]. Each visual token is scored by the attention the last input token pays
to it (averaged over heads and `layers`; eager attention is switched on for this pass only) or by
the cosine similarity of its hidden state to the last token's (averaged over `layers`). The top
budget/R tokens of each path are kept (the budget defaults to the token count of
`baseline_frames` linearly sampled frames, so the final pass costs what linear sampling costs),
in temporal order. Only one path's activations are alive at a time, so memory is bounded by the
path length, not the video length. The model side (family checks, scoring one path) is in
`zsar_cli.stages.token_scores`, the CLIP-space scorer in `zsar_cli.stages.select_tokens_clip`;
`zsar_cli.stages.self_res` answers from the kept tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import ArtifactMeta
from zsar_cli.backends import check_recorded_model, model_record, revision_key
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.images import decode_image, image_encoding
from zsar_cli.outputs import check_output_path, scoped
from zsar_cli.runner import RunSummary, Unit, run_stage
from zsar_cli.sharding import Shard
from zsar_cli.stages.select_tokens_config import SelectTokensConfig
from zsar_cli.stages.shortlist import ChoiceOptions, NoOptions, choice_options

# Re-exported: the model side (checks, switches, scoring one path) lives in token_scores.
from zsar_cli.stages.token_scores import UNSUPPORTED_FAMILIES as UNSUPPORTED_FAMILIES
from zsar_cli.stages.token_scores import PathScores as PathScores
from zsar_cli.stages.token_scores import check_family as check_family
from zsar_cli.stages.token_scores import eager_attention as eager_attention
from zsar_cli.stages.token_scores import resolve_layers as resolve_layers
from zsar_cli.stages.token_scores import score_path as score_path
from zsar_cli.stages.token_scores import tokens_per_frame as tokens_per_frame
from zsar_cli.stages.token_scores import uncapped_frames as uncapped_frames

# Re-exported: the tokens artifact (written here, read back by self_res) lives in tokens_artifact.
from zsar_cli.stages.tokens_artifact import TOKEN_COLUMNS as TOKEN_COLUMNS
from zsar_cli.stages.tokens_artifact import SelectedTokens as SelectedTokens
from zsar_cli.stages.tokens_artifact import tokens_table as tokens_table

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import LVLM
    from zsar_cli.engines import Engine


class SelectionError(InputError):
    """One video cannot be processed as asked (becomes an error row, the batch goes on)."""


def split_budget(budget: int, path_sizes: Sequence[int]) -> list[int]:
    """Tokens kept per path: the budget split evenly (the first paths take the remainder)."""
    paths = len(path_sizes)
    shares = [budget // paths + (1 if i < budget % paths else 0) for i in range(paths)]
    for i, (share, size) in enumerate(zip(shares, path_sizes, strict=True)):
        if share > size:
            raise SelectionError(
                f"--budget {budget}: path {i} would keep {share} tokens but has only {size}"
            )
    return shares


def top_tokens(scores: np.ndarray, keep: int) -> np.ndarray:
    """Flat indices (frame-major) of the `keep` best tokens, in temporal order."""
    flat = scores.ravel()
    # Stable sort: equal scores keep the earlier token, so selections are reproducible.
    best = np.argsort(-flat, kind="stable")[:keep]
    return np.sort(best)


# ---------------------------------------------------------------------------------------------
# One video


@dataclass
class FrameItem:
    frame_index: int
    timestamp: float | None
    segment: int
    image: np.ndarray


def decode_video_frames(video: pa.Table, encoding: str) -> tuple[list[FrameItem], str | None]:
    """The decodable frames of one video (sorted by time) and the first error met, if any."""
    cols = video.to_pydict()
    n = video.num_rows
    items, error = [], None
    for i in range(n):
        err = cols["error"][i] if "error" in cols else None
        data = cols["image"][i]
        if err is not None or data is None:
            error = error or err or "frame has no image"
            continue
        try:
            image = decode_image(data, encoding, cols["width"][i], cols["height"][i])
        except Exception as exc:  # PIL raises several types for corrupt bytes
            error = error or f"cannot decode frame image ({type(exc).__name__}: {exc})"
            continue
        segment = cols.get("segment", [None] * n)[i]
        items.append(
            FrameItem(
                int(cols["frame_index"][i]),
                cols["timestamp"][i],
                -1 if segment is None else int(segment),
                image,
            )
        )
    items.sort(key=lambda f: (f.timestamp if f.timestamp is not None else 0.0, f.frame_index))
    return items, error


def reflection_paths(
    video_id: str, frames: Sequence[FrameItem], segments: int | None
) -> list[list[FrameItem]]:
    """Group a video's frames into reflection paths (consecutive, temporal order)."""
    if not frames:
        raise SelectionError(f"{video_id}: no decodable frames")
    if segments is not None:
        if len(frames) % segments:
            raise SelectionError(
                f"{video_id}: --segments {segments} does not divide its {len(frames)} frames "
                f"(extract a multiple of {segments}, e.g. --segments {segments} "
                "--frames-per-segment S)"
            )
        size = len(frames) // segments
        return [list(frames[i * size : (i + 1) * size]) for i in range(segments)]
    if all(f.segment < 0 for f in frames):
        raise SelectionError(
            f"{video_id}: frames carry no segment; extract them with --segments R "
            "--frames-per-segment S, or pass --segments R"
        )
    groups: dict[int, list[FrameItem]] = {}
    for f in frames:
        groups.setdefault(f.segment, []).append(f)
    return [groups[s] for s in sorted(groups)]


def default_budget(config: SelectTokensConfig, per_frame: int, frames_per_unit: int = 1) -> int:
    """--budget, or the tokens of `baseline_frames` frames (of their units in native video)."""
    if config.budget is not None:
        return config.budget
    return -(-config.baseline_frames // frames_per_unit) * per_frame


def select_video_tokens(
    lvlm: Any,  # SelectionHooks (checked by check_family before the first video)
    video_id: str,
    frames: Sequence[FrameItem],
    prompt: str,
    config: SelectTokensConfig,
    label: str | None = None,
) -> SelectedTokens:
    """Self-ReS on one video for one prompt: score every path, keep the top tokens of each."""
    from zsar_cli.stages.self_res_video import check_path_lengths, frames_per_unit, is_native

    paths = reflection_paths(video_id, frames, config.segments)
    # Native video: scores are per unit (k frames: a Qwen-VL temporal patch), not per frame.
    k = frames_per_unit(lvlm)
    check_path_lengths(video_id, [len(p) for p in paths], k)
    native = is_native(lvlm)
    # Native video: every path (and the final pass) at the resolution of the whole video's clip.
    whole = len(frames) if native else None
    per_frame = tokens_per_frame(lvlm, paths[0][0].image, prompt, whole)
    sizes = [-(-len(p) // k) * per_frame for p in paths]
    budget = default_budget(config, per_frame, k)
    if budget > sum(sizes):
        origin = (
            "--budget"
            if config.budget is not None
            else (f"the default budget ({config.baseline_frames} frames × {per_frame} tokens)")
        )
        raise SelectionError(
            f"{video_id}: {origin} asks for {budget} tokens but only {sum(sizes)} visual tokens "
            f"exist ({len(frames)} frames × {per_frame}); lower --budget or --baseline-frames"
        )
    shares = split_budget(budget, sizes)
    height, width = paths[0][0].image.shape[:2]
    out = SelectedTokens(video_id, label, width=width, height=height, tokens_per_frame=per_frame)
    out.available = sum(sizes)
    out.video_frames = whole
    for path_number, (path, share) in enumerate(zip(paths, shares, strict=True)):
        times = [f.timestamp for f in path]
        result = score_path(
            lvlm, [f.image for f in path], prompt, config.scorer, config.layers, times, whole
        )
        if result.tokens_per_frame != per_frame:
            raise SelectionError(f"{video_id}: frames of different sizes in one video")
        flat_embeddings = result.embeddings.reshape(-1, result.embeddings.shape[-1])
        # DeepStack families: (tokens, layers, hidden), kept alongside each token's embedding.
        flat_deep = None if result.deepstack is None else result.deepstack.flatten(0, 1)
        for flat in top_tokens(result.scores, share):
            unit = int(flat) // per_frame
            frame = path[unit * k]  # a unit is named by its first frame
            out.segment.append(frame.segment if config.segments is None else path_number)
            out.frame_index.append(frame.frame_index)
            out.token_index.append(int(flat) % per_frame)
            out.score.append(float(result.scores.ravel()[flat]))
            out.embeddings.append(flat_embeddings[flat].clone())
            if flat_deep is not None:
                out.deepstack.append(flat_deep[flat].clone())
            out.timestamp.append(frame.timestamp)
            if native:
                out.frame_times.append(
                    tuple(float(t) for t in times[unit * k : unit * k + k] if t is not None)
                )
        del result, flat_embeddings, flat_deep  # one path's activations alive at a time
    return out


# ---------------------------------------------------------------------------------------------
# Run


# The runner's summary: videos, failed, rows, resumed_videos, cache_key, skipped.
SelectSummary = RunSummary


def load_model(config: SelectTokensConfig) -> LVLM:
    from zsar_cli.backends import load_lvlm

    return load_lvlm(
        config.model,
        device=config.device,
        dtype=config.dtype,
        trust_remote_code=config.trust_remote_code,
        max_pixels=config.max_pixels,
        max_frames=None,
    )


def prompts_for(config: SelectTokensConfig) -> list[tuple[str | None, str]]:
    """(label, question) pairs: one per label for a `{label}` question, else the question."""
    assert config.question is not None
    if config.labels_file is None:
        return [(None, config.question)]
    from zsar_cli.labels import read_labels

    return [
        (lab, config.question.replace("{label}", lab)) for lab in read_labels(config.labels_file)
    ]


def _carried_error(video: pa.Table) -> str | None:
    """The upstream error of a video that has no usable row at all."""
    errors = [e for e in video.column("error").to_pylist() if e is not None]
    if "image" in video.column_names:
        usable = [d is not None for d in video.column("image").to_pylist()]
    else:
        usable = [d is not None for d in video.column("patch_tokens").to_pylist()]
    if errors and not any(usable):
        return errors[0]
    return None


@dataclass(frozen=True)
class SelectTask:
    """Self-ReS on one video (zsar_cli.engines.VideoTask): what a worker runs, in this process
    or on a Ray actor. The model is the LVLM (`--scorer attention/similarity`) or, for
    `--scorer clip`, the encoder's spec with the questions' text embeddings."""

    config: SelectTokensConfig
    prompts: tuple[tuple[str | None, str], ...]
    encoding: str
    source: str = ""  # the input, for messages
    grid: tuple[int, ...] | None = None  # --scorer clip: the embeddings' patch grid
    encoder_spec: str = ""  # --scorer clip: the model that made the embeddings
    encoder_sha256: str | None = None  # and, for a built-in one, the digest of its files
    # --shortlist-from: one choice prompt per video over its shortlist (the prompts unused).
    choice: ChoiceOptions | None = None
    lvlm: Any = field(default=None, compare=False)  # given models (tests, classify)
    encoder: Any = field(default=None, compare=False)

    @property
    def clip(self) -> bool:
        return self.config.scorer == "clip"

    @property
    def uses_gpu(self) -> bool:
        return True

    def on_device(self, device: str) -> SelectTask:
        return replace(self, config=replace(self.config, device=device))

    def load(self) -> Any:
        """The LVLM (family checked), or the encoder's spec and text embeddings."""
        if self.clip:
            from zsar_cli.stages.select_tokens_clip import ClipScorer

            encoder = self.encoder
            if encoder is None:
                from zsar_cli.stages.encode import load_model as load_encoder

                if not self.encoder_spec:
                    raise InputError(f"{self.source}: embeddings do not say which model made them")
                spec = check_recorded_model(self.encoder_spec, self.encoder_sha256, self.source)
                encoder = load_encoder(spec, self.config.device, "fp32", 32)
            texts = encoder.encode_texts([q for _, q in self.prompts])
            return ClipScorer(encoder.spec, np.asarray(texts, np.float32))
        from zsar_cli.stages.self_res_video import resolve_video_input

        lvlm = self.lvlm if self.lvlm is not None else load_model(self.config)
        check_family(lvlm)
        resolve_video_input(lvlm, self.config.video_input)
        return lvlm

    def facts(self, model: Any) -> dict[str, Any]:
        if self.clip:
            assert self.grid is not None
            grid = list(self.grid)
            return {"token_space": "clip", "patch_grid": grid, **model_record(model.spec)}
        return {
            "token_space": "lvlm",
            "video_input": getattr(model, "video_input", "images"),
            **model_record(model.spec),
        }

    def __call__(self, model: Any, video: pa.Table) -> pa.Table:
        from zsar_cli.stages.select_tokens_clip import clip_select_video

        cfg = self.config
        video_id = video.column("video_id")[0].as_py() if video.num_rows else ""
        selections: list[SelectedTokens] = []
        errors: list[tuple[str, str | None, str]] = []
        carried = _carried_error(video)
        prompts = self.prompts
        if self.choice is not None and carried is None:
            from zsar_cli.prompts import format_choice_prompt

            try:
                # The options in CLIP's order, as classify --lvlm --self-res selects (its
                # rotations re-ask only the final pass, see classify_lvlm.lvlm_rerank).
                options, _ = self.choice.for_video(video_id)
                prompts = ((None, format_choice_prompt(cfg.question or "", options)),)
            except NoOptions as exc:
                carried = str(exc)
        frames: list[FrameItem] = []
        if carried is None and not self.clip:
            frames, _ = decode_video_frames(video, self.encoding)
        for pi, (label, prompt) in enumerate(prompts):
            if carried is not None:
                errors.append((video_id, label, carried))
                continue
            try:
                if self.clip:
                    assert self.grid is not None
                    sel = clip_select_video(video, model.text_embeddings[pi], self.grid, cfg)
                    sel.label = label
                else:
                    sel = select_video_tokens(model, video_id, frames, prompt, cfg, label)
                selections.append(sel)
            except SelectionError as exc:
                errors.append((video_id, label, str(exc)))
        return tokens_table(selections, errors, cfg.embedding_dtype)


@scoped
def run(
    inputs: str | Path,
    output: str | Path,
    config: SelectTokensConfig,
    lvlm: Any | None = None,
    encoder: Any | None = None,
    on_video: Callable[[str, str | None], None] | None = None,
    shard: Shard | None = None,
    force: bool = False,
    engine: Engine | None = None,
) -> SelectSummary:
    """Select tokens for every video of a `frames` artifact (or `embeddings`, scorer clip).

    As the other per-video stages: `shard` selects a block of videos into a part file, an
    output complete with the same settings is skipped (other settings: refused unless
    `force`), and finished videos are checkpointed so a rerun after a kill resumes. `engine`:
    where the videos are worked on (default: this process; Ray: actors that each load the
    model once).
    """
    from zsar_cli.engines import executor

    cfg = config.validated()
    prompts = prompts_for(cfg)
    clip = cfg.scorer == "clip"
    kind = "embeddings" if clip else "frames"
    if engine is not None and engine.ray and (lvlm is not None or encoder is not None):
        raise ConfigError("--engine ray loads the model in its actors; pass no loaded model")
    with executor(engine, output=str(output)) as ex:
        meta: ArtifactMeta
        meta, input_key, units = ex.units(str(inputs), kind, shard)
        check_output_path(output)  # before the input's own checks: writing over it is worse
        extra: dict[str, Any] = {
            "question": cfg.question,
            "scorer": cfg.scorer,
            "embedding_dtype": cfg.embedding_dtype,
        }
        grid: list[int] | None = None
        if clip:
            grid = meta.extra_json("patch_grid")
            if grid is None:
                raise InputError(
                    f"{inputs}: --scorer clip needs patch tokens; make the embeddings with "
                    "`zsar encode --patch-tokens`"
                )
        # The LVLM's resolved revision: a model updated under the same spec is other settings.
        upstream = [input_key, *([] if clip else revision_key(cfg.model))]
        choice = None
        if cfg.shortlist_from is not None:
            choice, keys = choice_options(cfg, [])
            upstream += keys
            extra["shortlist"] = cfg.shortlist
        task = SelectTask(
            cfg,
            tuple(prompts),
            image_encoding(meta.extra) if not clip else "raw",
            source=str(inputs),
            grid=tuple(grid) if grid is not None else None,
            encoder_spec=str(meta.extra_json("model_spec") or "") if clip else "",
            encoder_sha256=meta.extra.get("model_sha256") if clip else None,
            choice=choice,
            lvlm=lvlm,
            encoder=encoder,
        )

        def reported(unit: Unit, rows: pa.Table) -> None:
            if on_video is not None:
                errs = [e for e in rows.column("error").to_pylist() if e is not None]
                on_video(unit.video_id or "", errs[0] if errs else None)

        return run_stage(
            str(output),
            kind="tokens",
            config=cfg.provenance(),
            upstream=upstream,
            units=units,
            extra_metadata=lambda: {**extra, **ex.facts(task)},
            shard=shard,
            force=force,
            on_unit=reported,
            **ex.runner_args(task),
        )
