"""What a container says without decoding, through PyAV: its keyframe index and its packet times.

Input: an open PyAV video stream (or a video file, for `packet_times`). Output: `KeyframeIndex`
(the keyframe at or before a time, where the indexed data ends and whether the file stops short
of its own index: a cut-off download), and the sorted presentation times of every packet (the
frame numbers of a variable-rate stream). Also the container options every PyAV open uses:
plain local files only, and no playlist demuxers unless the user allows them.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import VideoError
from zsar_cli.probe import PROTOCOL_WHITELIST, DecodeLimits, _ff_path, format_whitelist
from zsar_cli.sampling import EPS

# Entries walked back from a time to find its keyframe (a GOP longer than this: no seek).
MAX_GOP_WALK = 4096


@functools.lru_cache(maxsize=1)
def _input_formats() -> tuple[str, ...]:
    import av

    names: list[str] = []
    for name in sorted(av.formats_available):
        try:
            if av.format.ContainerFormat(name).is_input:
                names.append(name)
        except ValueError:
            continue
    return tuple(names)


def container_options(limits: DecodeLimits) -> dict[str, str]:
    """`av.open` options: the file protocol only, and the allowed demuxers (playlists out)."""
    options = {"protocol_whitelist": PROTOCOL_WHITELIST}
    allowed = format_whitelist(_input_formats(), limits)
    if allowed is not None:
        options["format_whitelist"] = allowed
    return options


def reason(exc: BaseException) -> str:
    """An exception's message as one short clause."""
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


@dataclass(frozen=True)
class KeyframeIndex:
    """What a stream's index says, read lazily: entries stay in FFmpeg's table (each one read
    is a Python object; an hour of video has 10^5 of them) and are found by bisection."""

    tb_num: int
    tb_den: int
    usable: int  # entries whose data lies inside the file
    truncated: bool  # the file stops before its index does
    end: float | None  # time of the last usable entry
    # Index times are decode times (mp4), which precede presentation by the reorder delay: the
    # first keyframe's gap to the first frame estimates it for every keyframe (only to decide
    # whether to seek; the seek itself goes to presentation times).
    shift: float

    @classmethod
    def scan(cls, stream: Any, path: Path, tb: Fraction, first_pts: float) -> KeyframeIndex:
        """Assumes, as muxers write them, that the file positions of a stream's entries grow
        with their times, so the first entry past the end of the file is found by bisection."""
        entries = stream.index_entries
        n = len(entries)
        num, den = tb.numerator, tb.denominator
        if n == 0:
            return cls(num, den, 0, False, None, 0.0)
        size = path.stat().st_size

        def fits(i: int) -> bool:
            entry = entries[i]
            return bool(entry.pos < 0 or entry.pos + entry.size <= size)

        usable, truncated = n, False
        if not fits(n - 1):
            truncated = True
            lo, hi = 0, n - 1  # the first entry past the end of the file is in (lo, hi]
            if not fits(0):
                usable = 0
            else:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if fits(mid) else (lo, mid)
                usable = hi
        end = entries[usable - 1].timestamp * num / den if usable else None
        shift = 0.0
        first = entries[0]
        if first.is_keyframe:
            shift = max(0.0, first_pts - first.timestamp * num / den)
        return cls(num, den, usable, truncated, end, shift)

    def keyframe_before(self, stream: Any, target: float) -> float | None:
        """The (estimated) presentation time of the last indexed keyframe at or before target,
        from `stream`'s entries (the stream now open: a reopened file's generic demuxer holds
        only the entries it has read again)."""
        num, den = self.tb_num, self.tb_den
        limit = (target + EPS - self.shift) * den / num
        entries = stream.index_entries
        usable = min(self.usable, len(entries))
        i = bisect.bisect_right(entries, limit, hi=usable, key=lambda e: e.timestamp) - 1
        for _ in range(MAX_GOP_WALK):
            if i < 0:
                return None
            entry = entries[i]
            if entry.is_keyframe:
                return float(entry.timestamp * num / den + self.shift)
            i -= 1
        return None


def packet_times(
    path: Path, limits: DecodeLimits | None = None, stream_index: int | None = None
) -> np.ndarray:
    """Sorted presentation times of every video packet (demux only, no decoding)."""
    import av

    options = container_options(limits or DecodeLimits())
    try:
        with av.open(_ff_path(path), container_options=options) as container:
            stream = (
                container.streams[stream_index]
                if stream_index is not None
                else container.streams.video[0]
            )
            tb = Fraction(stream.time_base or Fraction(1, 90000))
            num, den = tb.numerator, tb.denominator
            values = [
                p.pts * num / den for p in container.demux(stream) if p.pts is not None and p.size
            ]
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: cannot read packet times ({reason(exc)})") from None
    return np.sort(np.asarray(values, dtype=np.float64))
