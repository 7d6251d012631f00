"""The `tokens` artifact of Self-ReS: kept visual tokens written (`select-tokens`) and read back
(the final pass of `query-lvlm --tokens` and `classify --lvlm --self-res`).

One row per kept token: video_id, segment (reflection path), frame_index, token_index (position
among the frame's visual tokens), score, embedding (the token as the LVLM's language model
receives it), timestamp, width, height, label; plus `deepstack` for families that feed visual
features into early decoder layers besides the input embeddings (Qwen3-VL's DeepStack): the
token's feature for each such layer, layer-major and flattened (layers × hidden; the layer count
is its length over the embedding's); and `frame_times` for tokens selected over native video
(`self_res_video`): the presentation times of the frames the token's unit covers (one frame, or
a Qwen-VL temporal patch of two), which the final pass gives the model again, with
`video_frames` (the video's frame count: the final pass is laid out at that clip's resolution
where the processor shares one pixel budget among a clip's frames). Artifacts without
these columns (other families, per-frame images, older zsar) read as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import build_table

EXTRA_FIELDS: tuple[pa.Field, ...] = (
    pa.field("timestamp", pa.float64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("label", pa.string()),
)
TOKEN_COLUMNS: tuple[str, ...] = (
    "video_id",
    "segment",
    "frame_index",
    "token_index",
    "score",
    "embedding",
    "timestamp",
    "width",
    "height",
    "label",
    "error",
)
DEEPSTACK = "deepstack"
FRAME_TIMES = "frame_times"
VIDEO_FRAMES = "video_frames"


@dataclass
class SelectedTokens:
    """The kept tokens of one video (for one question), ready to be written or answered from."""

    video_id: str
    label: str | None
    segment: list[int] = field(default_factory=list)
    frame_index: list[int] = field(default_factory=list)
    token_index: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    embeddings: list[Any] = field(default_factory=list)  # torch (hidden,) per kept token
    timestamp: list[float | None] = field(default_factory=list)
    width: int = 0
    height: int = 0
    tokens_per_frame: int = 0
    available: int = 0
    # DeepStack families: torch (layers, hidden) per kept token; empty for every other family.
    deepstack: list[Any] = field(default_factory=list)
    # Native video: the times of the frames of each kept token's unit (empty for images), and
    # the frame count of the video they were selected from (its clip's resolution).
    frame_times: list[tuple[float, ...]] = field(default_factory=list)
    video_frames: int | None = None


def _vectors(values: Sequence[Any], np_dtype: type) -> list[np.ndarray]:
    return [v.float().reshape(-1).numpy().astype(np_dtype) for v in values]


def tokens_table(
    selections: Sequence[SelectedTokens],
    errors: Sequence[tuple[str, str | None, str]] = (),
    embedding_dtype: str = "float16",
) -> pa.Table:
    """`tokens` rows of kept tokens, plus one error row per (video_id, label, message)."""
    cols: dict[str, list[Any]] = {name: [] for name in TOKEN_COLUMNS if name != "embedding"}
    vectors: list[np.ndarray | None] = []
    deep: list[np.ndarray | None] = []
    times: list[tuple[float, ...] | None] = []
    counts: list[int | None] = []
    with_deepstack = any(sel.deepstack for sel in selections)
    with_times = any(sel.frame_times for sel in selections)
    np_dtype = np.float16 if embedding_dtype == "float16" else np.float32
    for sel in selections:
        n = len(sel.token_index)
        cols["video_id"] += [sel.video_id] * n
        cols["segment"] += sel.segment
        cols["frame_index"] += sel.frame_index
        cols["token_index"] += sel.token_index
        cols["score"] += sel.score
        cols["timestamp"] += sel.timestamp
        cols["width"] += [sel.width] * n
        cols["height"] += [sel.height] * n
        cols["label"] += [sel.label] * n
        cols["error"] += [None] * n
        vectors += _vectors(sel.embeddings, np_dtype)
        if with_deepstack:
            deep += _vectors(sel.deepstack, np_dtype) if sel.deepstack else [None] * n
        if with_times:
            times += sel.frame_times if sel.frame_times else [None] * n
            counts += [sel.video_frames if sel.frame_times else None] * n
    for video_id, label, message in errors:
        for name in cols:
            cols[name].append(None)
        cols["video_id"][-1], cols["label"][-1], cols["error"][-1] = video_id, label, message
        vectors.append(None)
        deep.append(None)
        times.append(None)
        counts.append(None)
    value_type = pa.list_(pa.float16() if embedding_dtype == "float16" else pa.float32())
    columns: dict[str, Any] = {name: cols[name] for name in TOKEN_COLUMNS if name != "embedding"}
    columns["embedding"] = pa.array(vectors, type=value_type)
    extra = [*EXTRA_FIELDS, pa.field("embedding", value_type)]
    ordered = {name: columns[name] for name in TOKEN_COLUMNS}
    if with_deepstack:
        ordered[DEEPSTACK] = pa.array(deep, type=value_type)
        extra.append(pa.field(DEEPSTACK, value_type))
    if with_times:
        ordered[FRAME_TIMES] = pa.array(times, type=pa.list_(pa.float64()))
        ordered[VIDEO_FRAMES] = pa.array(counts, type=pa.int32())
        extra += [pa.field(FRAME_TIMES, pa.list_(pa.float64())), pa.field(VIDEO_FRAMES, pa.int32())]
    return build_table("tokens", ordered, extra_fields=extra)


# ---------------------------------------------------------------------------------------------
# Read back for the final pass


@dataclass
class KeptFrame:
    """A frame's kept visual tokens: their indices among its tokens and their embeddings."""

    frame_index: int
    token_index: np.ndarray  # sorted ints
    embeddings: Any  # torch (k, hidden)
    deepstack: Any = None  # torch (k, layers, hidden) for DeepStack families, else None
    times: tuple[float, ...] | None = None  # native video: the times of the unit's frames
    video_frames: int | None = None  # native video: frames of the video it was selected from


def kept_from_selection(sel: SelectedTokens) -> list[KeptFrame]:
    import torch

    by_frame: dict[int, list[int]] = {}
    for i, frame in enumerate(sel.frame_index):
        by_frame.setdefault(frame, []).append(i)
    out = []
    for frame, rows in by_frame.items():
        order = sorted(rows, key=lambda r: sel.token_index[r])
        out.append(
            KeptFrame(
                frame,
                np.asarray([sel.token_index[r] for r in order], dtype=np.int64),
                torch.stack([sel.embeddings[r] for r in order]),
                torch.stack([sel.deepstack[r] for r in order]) if sel.deepstack else None,
                sel.frame_times[rows[0]] if sel.frame_times else None,
                sel.video_frames if sel.frame_times else None,
            )
        )
    return out


def _matrix(column: pa.ChunkedArray | pa.Array, rows: int) -> np.ndarray:
    """A list column of equal-length vectors → (rows × width) float32."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(rows, len(flat) // max(1, rows))


def kept_from_rows(rows: pa.Table) -> list[KeptFrame]:
    """Kept frames of one video (and label) from `tokens` rows, in temporal order."""
    import torch

    cols = rows.to_pydict()
    order = sorted(
        range(rows.num_rows),
        key=lambda i: (
            cols["timestamp"][i]
            if cols.get("timestamp") and cols["timestamp"][i] is not None
            else 0.0,
            cols["frame_index"][i],
            cols["token_index"][i],
        ),
    )
    matrix = _matrix(rows.column("embedding"), rows.num_rows)
    deep = None
    if DEEPSTACK in rows.column_names and rows.column(DEEPSTACK).null_count == 0:
        hidden = matrix.shape[1]
        deep = _matrix(rows.column(DEEPSTACK), rows.num_rows).reshape(rows.num_rows, -1, hidden)
    times = cols.get(FRAME_TIMES)
    counts = cols.get(VIDEO_FRAMES)
    grouped: list[tuple[int, list[int]]] = []
    for i in order:
        frame = int(cols["frame_index"][i])
        if not grouped or grouped[-1][0] != frame:
            grouped.append((frame, []))
        grouped[-1][1].append(i)
    return [
        KeptFrame(
            frame,
            np.asarray([int(cols["token_index"][i]) for i in picked], dtype=np.int64),
            torch.from_numpy(matrix[picked]),
            None if deep is None else torch.from_numpy(deep[picked]),
            tuple(times[picked[0]]) if times and times[picked[0]] is not None else None,
            counts[picked[0]] if counts else None,
        )
        for frame, picked in grouped
    ]
