#!/usr/bin/env bash
# Submit the ZEAL pipeline as Slurm job arrays chained with --dependency=afterok:
#   extract-frames → (describe + encode-text, once) → encode → query-lvlm → localize → merge
# Usage: SHARDS=64 VIDEOS=list.txt LABELS=labels.txt WORK=/scratch/run1 examples/slurm/submit.sh [STAGE]
# STAGE (optional) submits one stage only: extract-frames | encode | query-lvlm | localize.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SHARDS:?set SHARDS}" "${WORK:?set WORK}"
mkdir -p "$WORK"
array="--array=0-$((SHARDS - 1))"
submit() {  # submit SCRIPT [DEPENDENCY] → job id
  local dep=()
  [ -n "${2:-}" ] && dep=("--dependency=afterok:$2")
  sbatch --parsable "$array" "${dep[@]}" --export=ALL "$here/$1"
}
if [ $# -eq 1 ]; then
  submit "$1.sbatch"
  exit 0
fi
: "${VIDEOS:?set VIDEOS}" "${LABELS:?set LABELS}"
extract=$(submit extract-frames.sbatch)
prep=$(sbatch --parsable --export=ALL --job-name=zsar-describe --wrap \
  "zsar describe --labels '$LABELS' -o '$WORK/desc.parquet' && \
   zsar encode-text --labels '$LABELS' --descriptions '$WORK/desc.parquet' -o '$WORK/text.parquet'")
encode=$(submit encode.sbatch "$extract")
lvlm=$(submit query-lvlm.sbatch "$extract:$prep")
localize=$(submit localize.sbatch "$encode:$lvlm")
sbatch --parsable --export=ALL --dependency="afterok:$localize" --job-name=zsar-merge --wrap \
  "zsar merge '$WORK/intervals' -o '$WORK/intervals.parquet'"
echo "submitted: extract=$extract describe=$prep encode=$encode query-lvlm=$lvlm localize=$localize"
