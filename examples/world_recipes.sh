#!/usr/bin/env bash
# Every recipe on its world stand-in with the world models: the "measured here" column of the
# tables in docs/recipes.md. usage: examples/world_recipes.sh [OUT] (default build/recipes-world)
set -euo pipefail
out=${1:-build/recipes-world}
PYTHON=${PYTHON:-python3}
zsar() { $PYTHON -m zsar_cli "$@"; }
recipe() { $PYTHON -m zsar_cli.recipes "$@" --clip builtin:world-clip --lvlm builtin:world-lvlm --device cpu; }
small=(--size 160x120 --fps 10 --seed 3 --force)
mkdir -p "$out"
zsar synth "$out/ucf101" --layout ucf101 --trimmed 48 --trimmed-duration 2-4 "${small[@]}"
recipe ucf101 --root "$out/ucf101" --out "$out" --descriptions "$out/ucf101/descriptions.json"
zsar synth "$out/hmdb51" --layout hmdb51 --trimmed 48 --trimmed-duration 2-4 "${small[@]}"
recipe hmdb51 --root "$out/hmdb51" --out "$out" --descriptions "$out/hmdb51/descriptions.json"
zsar synth "$out/k600" --layout kinetics --trimmed 48 --trimmed-duration 2-4 "${small[@]}"
recipe k600 --root "$out/k600" --out "$out" --descriptions "$out/k600/descriptions.json"
zsar synth "$out/ucf-crime" --layout ucf-crime --anomaly 24 --anomaly-duration 10-16 "${small[@]}"
recipe ucfcrime-selfres --root "$out/ucf-crime" --out "$out"
recipe ucfcrime-auc --root "$out/ucf-crime" --out "$out" --set "normal=an empty gray background"
zsar synth "$out/thumos14" --layout thumos14 --untrimmed 12 --untrimmed-duration 20-26 \
    --instances 2-3 --instance-duration 3-8 --same-label-prob 0.7 --phase-seconds 2 "${small[@]}"
recipe thumos14-zeal --root "$out/thumos14" --out "$out" --descriptions "$out/thumos14/descriptions.json"
zsar synth "$out/charades" --layout charades-sta --untrimmed 12 --untrimmed-duration 20-30 "${small[@]}"
recipe charades-sta --root "$out/charades" --out "$out"
cat "$out"/*/table.md
