#!/usr/bin/env bash
# The whole ZEAL chain on a folder (or list file) of videos, one CLI stage at a time:
#   extract-frames --fps 1 → encode → describe → encode-text → query-lvlm (start/end) →
#   localize --method zeal → score (when ground truth is given)
# plus the CLIP-only baseline from the same embeddings, for comparison.
#
# Usage: examples/zeal_chain.sh VIDEOS LABELS DESCRIPTIONS OUTDIR [GROUND_TRUTH]
#   VIDEOS        a video file, a folder (searched recursively) or a list file (video[,label])
#   LABELS        labels file, one label per line
#   DESCRIPTIONS  descriptions JSON/Parquet (description, descriptors, start/end questions);
#                 "-" writes them with `zsar describe` and DESCRIBE_MODEL instead
#   OUTDIR        where every artifact goes (frames, emb, text, answers, intervals, metrics)
#   GROUND_TRUTH  optional ActivityNet JSON or THUMOS14 folder for `zsar score`
# Environment: ZSAR (default: zsar), CLIP_MODEL (builtin:world-clip), LVLM_MODEL
# (builtin:world-lvlm), DESCRIBE_MODEL (LVLM_MODEL), DEVICE (auto), LOCALIZE_ARGS (extra options
# for localize, e.g. "--compat zeal" or "--gt-labels GT"), BASELINE_ARGS (for --method clip).
# Rerunning redoes every step; each artifact carries its settings in its metadata
# (`zsar info FILE` shows them).
set -euo pipefail

if [[ $# -lt 4 || $# -gt 5 ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
videos=$1 labels=$2 descriptions=$3 out=$4 gt=${5:-}
ZSAR=${ZSAR:-zsar}
CLIP_MODEL=${CLIP_MODEL:-builtin:world-clip}
LVLM_MODEL=${LVLM_MODEL:-builtin:world-lvlm}
DESCRIBE_MODEL=${DESCRIBE_MODEL:-$LVLM_MODEL}
DEVICE=${DEVICE:-auto}
read -r -a localize_args <<<"${LOCALIZE_ARGS:-}"
read -r -a baseline_args <<<"${BASELINE_ARGS:-}"

mkdir -p "$out"
step() { printf '== %s\n' "$*" >&2; }

step "frames at 1 fps"
$ZSAR extract-frames "$videos" --fps 1 -o "$out/frames.parquet"

step "CLIP frame embeddings ($CLIP_MODEL)"
$ZSAR encode "$out/frames.parquet" -m "$CLIP_MODEL" --device "$DEVICE" -o "$out/emb.parquet"

if [[ $descriptions == "-" ]]; then
    step "label descriptions ($DESCRIBE_MODEL)"
    $ZSAR describe --labels "$labels" -m "$DESCRIBE_MODEL" -o "$out/descriptions.parquet"
    descriptions=$out/descriptions.parquet
fi

step "text embeddings of the descriptions"
$ZSAR encode-text --labels "$labels" --descriptions "$descriptions" --templates none \
    -m "$CLIP_MODEL" --device "$DEVICE" -o "$out/text.parquet"
step "text embeddings of the label names (CLIP-only baseline)"
$ZSAR encode-text --labels "$labels" -m "$CLIP_MODEL" --device "$DEVICE" \
    -o "$out/text_names.parquet"

step "LVLM start/end p_yes per frame ($LVLM_MODEL)"
$ZSAR query-lvlm "$out/frames.parquet" --descriptions "$descriptions" --labels "$labels" \
    -m "$LVLM_MODEL" --device "$DEVICE" -o "$out/answers.parquet"

step "ZEAL proposals"
$ZSAR localize --method zeal --embeddings "$out/emb.parquet" --text "$out/text.parquet" \
    --answers "$out/answers.parquet" "${localize_args[@]}" -o "$out/intervals.parquet"
step "CLIP-only baseline proposals"
$ZSAR localize --method clip --embeddings "$out/emb.parquet" --text "$out/text_names.parquet" \
    "${baseline_args[@]}" -o "$out/intervals_clip.parquet"

if [[ -n $gt ]]; then
    step "scores against $gt"
    $ZSAR score "$out/intervals.parquet" --gt "$gt" -o "$out/metrics.parquet" --json \
        >"$out/metrics.json"
    $ZSAR score "$out/intervals_clip.parquet" --gt "$gt" -o "$out/metrics_clip.parquet" \
        --json >"$out/metrics_clip.json"
    step "done: $out/metrics.json (ZEAL), $out/metrics_clip.json (CLIP-only)"
else
    step "done: $out/intervals.parquet"
fi
