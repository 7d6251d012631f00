#!/usr/bin/env bash
# Rebuild the shipped `builtin:world-lvlm` from scratch (one CPU thread, fixed seeds, ~140 min).
# Each step continues the previous one; every step's flags and metrics are nested in BUILD.json.
#   usage: scripts/build_world_lvlm.sh [WORKDIR]   (the model ends up in WORKDIR/wl)
set -euo pipefail
work=${1:-build/world-lvlm}
build="${PYTHON:-python3} scripts/build_world_lvlm_fastvlm.py"
choice_heavy=0.12,0.1,0.02,0.6,0.02,0.14   # presence,zeal,anomaly,choice,attribute,multi[,video_choice]
# 1. vision tower, then all question kinds with the from-scratch curriculum (~35 min)
$build --out "$work/base"
# 2. more weight on the single-frame label questions (~9 min)
$build --init "$work/base" --steps 2500 --lr 5e-4 --seed 2 --out "$work/step2"
# 3-4. one token per lettered option line, then choice-heavy training (~11 + ~14 min)
$build --init "$work/step2" --option-lines --steps 3000 --lr 2e-3 --seed 4 \
    --mix "$choice_heavy" --out "$work/step3"
$build --init "$work/step3" --steps 4000 --lr 2e-3 --seed 5 --mix "$choice_heavy" \
    --out "$work/step4"
# 5-6. back towards ZEAL's start/end (phase) questions, which the choice-heavy steps eroded
$build --init "$work/step4" --steps 2500 --lr 1e-3 --seed 7 \
    --mix 0.15,0.4,0.02,0.25,0.03,0.15 --out "$work/step5"
$build --init "$work/step5" --steps 3000 --lr 1e-3 --seed 10 \
    --mix 0.1,0.6,0.02,0.15,0.03,0.1 --out "$work/step6"
# 7. classify --lvlm's prompt: 4-16 frames of one clip, CLIP-like shortlists in random order
#    (single-frame choice alone left 16-frame choice at ~55%), the other kinds kept in the mix
$build --init "$work/step6" --steps 3000 --lr 1e-3 --seed 11 \
    --mix 0.1,0.3,0.02,0.1,0.03,0.1,0.35 --out "$work/wl"
