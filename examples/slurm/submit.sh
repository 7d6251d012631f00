#!/usr/bin/env bash
# Submit the ZEAL pipeline as Slurm job arrays chained with --dependency=afterok:
#   extract-frames → (describe + encode-text, once) → encode → query-lvlm → localize → merge
# Usage: SHARDS=64 VIDEOS=list.txt LABELS=labels.txt WORK=/scratch/run1 examples/slurm/submit.sh [STAGE]
# STAGE (optional) submits one stage only: extract-frames | encode | query-lvlm | localize.
#
# Environment (all optional but SHARDS, WORK and, for the pipeline, VIDEOS and LABELS):
#   DESCRIPTIONS    a descriptions JSON/Parquet to use instead of writing one with `zsar describe`
#   DESCRIBE_MODEL  the text model of `zsar describe` (default: describe's own default)
#   CLIP_MODEL, LVLM_MODEL, DEVICE, PRECISION, FPS, SIZE   read by the .sbatch scripts
#   SBATCH_ARGS     extra sbatch options for every job (--partition=..., --account=...)
#   CPU_SBATCH_ARGS / GPU_SBATCH_ARGS   extra options for the CPU jobs (extract, describe,
#                   localize, merge) / the model jobs (encode, query-lvlm); later options win over
#                   the scripts' #SBATCH lines, e.g. GPU_SBATCH_ARGS="--gres=none" on a CPU cluster
#   TASKS           the array indices of a one-stage submission (default 0-SHARDS-1): resubmit a
#                   cancelled or failed task with TASKS=5 (or TASKS=3,7-9) examples/slurm/submit.sh STAGE
# Every job writes its log to $WORK/logs/NAME-JOB_TASK.out. ZSAR_SHARDS=$SHARDS is exported, so
# `--shard auto` names the same part whichever tasks are (re)submitted. A finished part is skipped
# on rerun and a killed one resumes from its per-video checkpoints: resubmitting the whole
# pipeline after a failure redoes only what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SHARDS:?set SHARDS}" "${WORK:?set WORK}"
mkdir -p "$WORK/logs"
export ZSAR_SHARDS=$SHARDS
read -r -a common <<<"${SBATCH_ARGS:-}"
read -r -a cpu_args <<<"${CPU_SBATCH_ARGS:-}"
read -r -a gpu_args <<<"${GPU_SBATCH_ARGS:-}"
log=(--output="$WORK/logs/%x-%A_%a.out")

submit() {  # submit SCRIPT [DEPENDENCY] → job id
  local dep=() resources=("${cpu_args[@]}")
  [ -n "${2:-}" ] && dep=("--dependency=afterok:$2" --kill-on-invalid-dep=yes)
  case $1 in encode.sbatch | query-lvlm.sbatch) resources=("${gpu_args[@]}") ;; esac
  sbatch --parsable --array="${TASKS:-0-$((SHARDS - 1))}" "${dep[@]}" "${log[@]}" \
    "${common[@]}" "${resources[@]}" --export=ALL "$here/$1"
}
once() {  # once NAME DEPENDENCY COMMAND → job id of a single (non-array) CPU job
  local dep=()
  [ -n "$2" ] && dep=("--dependency=afterok:$2" --kill-on-invalid-dep=yes)
  sbatch --parsable --job-name="$1" "${dep[@]}" --output="$WORK/logs/%x-%j.out" \
    "${common[@]}" "${cpu_args[@]}" --export=ALL --wrap "set -eu; $3"
}
q() { printf '%q' "$1"; }

if [ $# -eq 1 ]; then
  submit "$1.sbatch"
  exit 0
fi
: "${VIDEOS:?set VIDEOS}" "${LABELS:?set LABELS}"
extract=$(submit extract-frames.sbatch)
desc=${DESCRIPTIONS:-$WORK/desc.parquet}
text="zsar encode-text --labels $(q "$LABELS") --templates none --descriptions $(q "$desc")"
text+=" -m $(q "${CLIP_MODEL:-openclip:ViT-B-32/laion2b_s34b_b79k}") --device cpu"
text+=" -o $(q "$WORK/text.parquet")"
if [ -n "${DESCRIPTIONS:-}" ]; then
  prep=$(once zsar-describe "" "$text")
else
  describe="zsar describe --labels $(q "$LABELS") ${DESCRIBE_MODEL:+-m $(q "$DESCRIBE_MODEL")}"
  prep=$(once zsar-describe "" "$describe -o $(q "$desc") && $text")
fi
encode=$(submit encode.sbatch "$extract")
lvlm=$(submit query-lvlm.sbatch "$extract:$prep")
localize=$(submit localize.sbatch "$encode:$lvlm:$prep")
merge=$(once zsar-merge "$localize" \
  "zsar merge $(q "$WORK/answers") -o $(q "$WORK/answers.parquet") && \
   zsar merge $(q "$WORK/intervals") -o $(q "$WORK/intervals.parquet")")
echo "submitted: extract=$extract describe=$prep encode=$encode query-lvlm=$lvlm" \
  "localize=$localize merge=$merge"
