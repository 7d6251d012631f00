"""Self-ReS in CLIP space (`select-tokens --scorer clip`): no LVLM is loaded.

Input: one video's rows of an `embeddings` artifact made with `encode --patch-tokens`, and the
question's text embedding from the same encoder. Output: its kept patch tokens
(`select_tokens.SelectedTokens`, rows of a `tokens` artifact): each patch token is scored by its
cosine similarity to the question, and the top budget/R of each reflection path are kept, as the
LVLM scorers keep theirs (`zsar_cli.stages.select_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from zsar_cli.stages.select_tokens import (
    FrameItem,
    SelectedTokens,
    SelectionError,
    default_budget,
    reflection_paths,
    split_budget,
    top_tokens,
)
from zsar_cli.stages.select_tokens_config import SelectTokensConfig


@dataclass(frozen=True)
class ClipScorer:
    """What `--scorer clip` needs of its encoder: its spec and the questions' embeddings."""

    spec: str
    text_embeddings: np.ndarray


def clip_select_video(
    video: pa.Table, text_embedding: np.ndarray, grid: Sequence[int], config: SelectTokensConfig
) -> SelectedTokens:
    """Self-ReS with CLIP patch tokens: score = cosine(patch token, question text embedding)."""
    cols = video.to_pydict()
    video_id = cols["video_id"][0]
    rows, cols_grid = int(grid[0]), int(grid[1])
    per_frame = rows * cols_grid
    frames: list[tuple[FrameItem, np.ndarray]] = []
    for i in range(video.num_rows):
        tokens = cols["patch_tokens"][i] if "patch_tokens" in cols else None
        if cols.get("error", [None] * video.num_rows)[i] is not None or tokens is None:
            continue
        segment = cols.get("segment", [None] * video.num_rows)[i]
        item = FrameItem(
            int(cols["frame_index"][i]),
            cols["timestamp"][i],
            -1 if segment is None else int(segment),
            np.zeros((0, 0, 3), np.uint8),
        )
        frames.append((item, np.asarray(tokens, dtype=np.float32).reshape(per_frame, -1)))
    frames.sort(key=lambda p: (p[0].timestamp or 0.0, p[0].frame_index))
    patches = {id(f): t for f, t in frames}
    paths = reflection_paths(video_id, [f for f, _ in frames], config.segments)
    sizes = [len(p) * per_frame for p in paths]
    budget = default_budget(config, per_frame)
    if budget > sum(sizes):
        raise SelectionError(
            f"{video_id}: a budget of {budget} tokens exceeds its {sum(sizes)} patch tokens "
            f"({len(frames)} frames × {per_frame}); lower --budget or --baseline-frames"
        )
    shares = split_budget(budget, sizes)
    out = SelectedTokens(video_id, None, tokens_per_frame=per_frame, available=sum(sizes))
    import torch

    text = text_embedding / max(float(np.linalg.norm(text_embedding)), 1e-12)
    for path_number, (path, share) in enumerate(zip(paths, shares, strict=True)):
        stacked = np.stack([patches[id(f)] for f in path])  # (frames, P, D)
        norms = np.linalg.norm(stacked, axis=-1).clip(1e-12)
        scores = (stacked @ text) / norms
        for flat in top_tokens(scores, share):
            frame = path[int(flat) // per_frame]
            out.segment.append(frame.segment if config.segments is None else path_number)
            out.frame_index.append(frame.frame_index)
            out.token_index.append(int(flat) % per_frame)
            out.score.append(float(scores.ravel()[flat]))
            out.embeddings.append(torch.from_numpy(stacked.reshape(-1, stacked.shape[-1])[flat]))
            out.timestamp.append(frame.timestamp)
    return out
