"""Benchmark of `zsar score` on temporal localization: 1,000 videos × 200 intervals each.

Prints the wall time of the whole stage (read the intervals artifact + ActivityNet JSON ground
truth, AP at 10 tIoU thresholds, metrics artifact written; target < 5 s), and ratios against two
baselines measured in the same run: reading the artifact alone, and a straightforward per-
prediction loop implementation of the same AP timed on a subset and scaled per prediction.

Usage: python bench/score.py [--videos 1000] [--per-video 200] [--classes 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.metrics import ANET_TIOU, interpolated_ap, temporal_ap
from zsar_cli.stages.score import ScoreConfig, run


def make_world(n_videos: int, per_video: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    classes = [f"class {c}" for c in range(n_classes)]
    database = {}
    cols: dict[str, list] = {k: [] for k in ("video_id", "label", "t_start", "t_end", "score")}
    for v in range(n_videos):
        vid = f"video_{v:05d}"
        duration = float(rng.uniform(30, 180))
        anns = []
        for _ in range(int(rng.integers(1, 5))):
            s = float(rng.uniform(0, duration - 5))
            anns.append({"segment": [s, min(duration, s + float(rng.uniform(2, 30)))],
                         "label": classes[int(rng.integers(n_classes))]})  # fmt: skip
        database[vid] = {"subset": "validation", "duration": duration, "annotations": anns}
        starts = rng.uniform(0, duration - 1, per_video)
        cols["video_id"] += [vid] * per_video
        cols["label"] += [classes[i] for i in rng.integers(0, n_classes, per_video)]
        cols["t_start"] += starts.tolist()
        cols["t_end"] += (starts + rng.uniform(1, 40, per_video)).tolist()
        cols["score"] += rng.random(per_video).tolist()
    return {"version": "bench", "database": database}, cols


def naive_ap(pv, pc, ps, pe, sc, gv, gc, gs, ge, n_classes, thresholds):
    """Per-prediction loops (the shape of most reference implementations)."""
    ap = np.zeros((len(thresholds), n_classes))
    for c in range(n_classes):
        gidx = np.flatnonzero(gc == c)
        pidx = np.flatnonzero(pc == c)
        pidx = pidx[np.argsort(-sc[pidx], kind="stable")]
        for ti, t in enumerate(thresholds):
            taken: set[int] = set()
            hits = []
            for i in pidx:
                best, best_iou = -1, -1.0
                for j in gidx[gv[gidx] == pv[i]]:
                    inter = max(0.0, min(pe[i], ge[j]) - max(ps[i], gs[j]))
                    iou = inter / ((pe[i] - ps[i]) + (ge[j] - gs[j]) - inter)
                    if iou >= t and iou > best_iou and j not in taken:
                        best, best_iou = j, iou
                if best >= 0:
                    taken.add(best)
                hits.append(best >= 0)
            h = np.array(hits, float)
            if h.size and gidx.size:
                tp, fp = np.cumsum(h), np.cumsum(1 - h)
                ap[ti, c] = interpolated_ap(tp / (tp + fp), tp / gidx.size)
    return ap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--per-video", type=int, default=200)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--naive-videos", type=int, default=25)
    args = parser.parse_args()

    gt, cols = make_world(args.videos, args.per_video, args.classes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "gt.json").write_text(json.dumps(gt))
        write_artifact(build_table("intervals", cols), root / "iv.parquet", "intervals", {})

        t0 = time.perf_counter()
        read_artifact(root / "iv.parquet", "intervals")
        t_read = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = run(root / "iv.parquet", root / "gt.json", root / "m.parquet", ScoreConfig())
        t_score = time.perf_counter() - t0

    # Naive baseline on the first videos, scaled per prediction; checked equal on that subset.
    n_pred_sub = args.naive_videos * args.per_video
    classes = {f"class {c}": c for c in range(args.classes)}
    pv = np.repeat(np.arange(args.naive_videos), args.per_video)
    pc = np.array([classes[x] for x in cols["label"][:n_pred_sub]])
    ps, pe = np.array(cols["t_start"][:n_pred_sub]), np.array(cols["t_end"][:n_pred_sub])
    sc = np.array(cols["score"][:n_pred_sub])
    g = [(v, classes[a["label"]], *a["segment"])
         for v, vid in enumerate(list(gt["database"])[: args.naive_videos])
         for a in gt["database"][vid]["annotations"]]  # fmt: skip
    ga = np.array(g, float)
    gv, gc, gs, ge = ga[:, 0].astype(int), ga[:, 1].astype(int), ga[:, 2], ga[:, 3]
    t0 = time.perf_counter()
    slow = naive_ap(pv, pc, ps, pe, sc, gv, gc, gs, ge, args.classes, ANET_TIOU)
    t_naive = (time.perf_counter() - t0) * (len(cols["score"]) / n_pred_sub)
    fast = temporal_ap(pv, pc, ps, pe, sc, gv, gc, gs, ge, args.classes, ANET_TIOU).ap
    assert np.allclose(np.nan_to_num(fast), slow), "vectorised AP differs from the loop version"

    n = len(cols["score"])
    print(f"zsar score: {args.videos} videos x {args.per_video} intervals = {n} predictions, "
          f"{len(ANET_TIOU)} tIoU thresholds, {args.classes} classes")  # fmt: skip
    print(f"  score (read + AP + write metrics): {t_score:.2f} s  (target < 5 s)")
    print(
        f"  baseline, read artifact only:      {t_read:.2f} s"
        f"  -> score/read = {t_score / t_read:.1f}x"
    )
    print(f"  baseline, naive loop AP (scaled from {n_pred_sub} predictions): {t_naive:.1f} s"
          f"  -> speed-up {t_naive / t_score:.0f}x")  # fmt: skip
    print(f"  average mAP {report.result.average_map:.4f} (random proposals)")
    if t_score >= 5.0:
        print("  WARNING: above the 5 s target")


if __name__ == "__main__":
    main()
