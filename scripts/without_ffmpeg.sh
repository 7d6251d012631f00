#!/usr/bin/env bash
# Run a command with the ffmpeg and ffprobe programs hidden from PATH: `make test-no-ffmpeg`
# shows the test suite passes without them (zsar decodes with PyAV's bundled FFmpeg; the programs
# are only for `--decoder ffmpeg`, issue #17). PATH becomes a temporary folder of links to every
# other program on PATH, the first of each name as the shell would find it.
# Usage: scripts/without_ffmpeg.sh CMD [ARG...]
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 2
fi
bin=$(mktemp -d "${TMPDIR:-/tmp}/without-ffmpeg.XXXXXX")
trap 'rm -rf "$bin"' EXIT
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || continue
  for exe in "$dir"/*; do
    name=${exe##*/}
    case $name in ffmpeg | ffprobe) continue ;; esac
    if [ -f "$exe" ] && [ -x "$exe" ] && [ ! -e "$bin/$name" ]; then
      ln -s "$exe" "$bin/$name"
    fi
  done
done
# Checked as the tests look a program up (conftest.missing_ffmpeg, zsar's --decoder ffmpeg).
if ! PATH=$bin python3 -c 'import shutil, sys; sys.exit(any(map(shutil.which, ("ffmpeg", "ffprobe"))))'; then
  echo "$0: ffmpeg or ffprobe is still found on the new PATH" >&2
  exit 1
fi
PATH=$bin "$@"
