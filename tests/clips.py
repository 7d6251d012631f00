"""Synthetic test clips from FFmpeg's lavfi sources, encoded in process with PyAV.

Input: a lavfi source (`testsrc2`), a duration, rate and size, and the ffmpeg program's output
options a test wants (`-c:v mpeg4 -q:v 5`). Output: the clip file. `make_clip` makes it with
PyAV, so the tests need no ffmpeg program on PATH (zsar decodes with PyAV's bundled FFmpeg; the
programs are only for `--decoder ffmpeg`, issue #17). Each option is translated to what the
program does with it (`OPTION_TRANSLATIONS`); one without a translation is an error naming it, so
a new test never silently gets a different clip from the one its options describe.
`make_audio` writes an audio-only file the same way. `make_clip_with_ffmpeg` is the program's
version, kept only to check the two agree (tests/test_clips.py).
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.filter
from av.audio.stream import AudioStream
from av.codec.context import ThreadType
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

# What each ffmpeg output option becomes here (the report and the error messages quote it).
OPTION_TRANSLATIONS: dict[str, str] = {
    "-c:v": "the encoder (default: the container's, as the program picks it)",
    "-pix_fmt": "lavfi `format` filter (default: the encoder's format closest to the source's)",
    "-g": "codec option g",
    "-bf": "codec option bf",
    "-b:v": "codec option b",
    "-crf": "encoder option crf",
    "-preset": "encoder option preset",
    "-deadline": "encoder option deadline",
    "-cpu-used": "encoder option cpu-used",
    "-q:v": "constant quantizer: flags +qscale, global_quality, qmin = qmax (mpeg4)",
    "-f": "the container format (default: guessed from the file name)",
    "-movflags": "container option movflags",
    "-output_ts_offset": "container option output_ts_offset",
    "-fps_mode": "vfr only: the frames' own pts, a repeated one moved a tick on",
    "-vf": "appended to the lavfi source's graph",
}
CODEC_OPTIONS = {
    "-g": "g",
    "-bf": "bf",
    "-b:v": "b",
    "-crf": "crf",
    "-preset": "preset",
    "-deadline": "deadline",
    "-cpu-used": "cpu-used",
}
CONTAINER_OPTIONS = {"-movflags": "movflags", "-output_ts_offset": "output_ts_offset"}
# The ffmpeg program sets a muxer's max_delay from -muxdelay, 0.7 s unless told: mpegts (and
# mpeg) offset every timestamp by it, so an mpegts clip starts at 1.4 s plus the codec delay.
PROGRAM_MAX_DELAY_US = "700000"
LAVC_BIT_RATE_TOLERANCE = 4_000_000  # libavcodec's "bt": AV_CODEC_DEFAULT_BITRATE * 20
FF_QP2LAMBDA = 118  # libavutil's quantizer -> lambda factor; the program's -q:v scales by it
# The encoders checked to give the program's clip (tests/test_clips.py); another one may need
# more of the program's choices (mjpeg: its pixel formats are yuvj* only, by the program's rule).
CHECKED_ENCODERS = frozenset({"libx264", "libvpx-vp9", "mpeg4", "mpeg2video", "gif", "ffv1"})
# The encoders whose -q:v was checked to set their quantizer (the file size follows it).
QSCALE_ENCODERS = frozenset({"mpeg4"})


@dataclass
class ClipOptions:
    """The ffmpeg program's output options, sorted into what PyAV needs where."""

    codec: str | None = None
    pix_fmt: str | None = None
    codec_options: dict[str, str] = field(default_factory=dict)
    qscale: int | None = None
    container_format: str | None = None
    container_options: dict[str, str] = field(default_factory=dict)
    filters: list[str] = field(default_factory=list)
    variable_rate: bool = False


def parse_output_options(args: list[str]) -> ClipOptions:
    """Sort `-name value` pairs; ValueError naming any option without a translation."""
    options = ClipOptions()
    if len(args) % 2:
        raise ValueError(f"make_clip: expected -option value pairs, got {args}")
    for name, value in zip(args[::2], args[1::2], strict=True):
        if name in CODEC_OPTIONS:
            options.codec_options[CODEC_OPTIONS[name]] = value
        elif name in CONTAINER_OPTIONS:
            options.container_options[CONTAINER_OPTIONS[name]] = value
        elif name == "-c:v":
            options.codec = value
        elif name == "-pix_fmt":
            options.pix_fmt = value
        elif name == "-q:v":
            options.qscale = int(value)
        elif name == "-f":
            options.container_format = value
        elif name == "-vf":
            options.filters.append(value)
        elif name == "-fps_mode" and value == "vfr":
            options.variable_rate = True
        else:
            known = ", ".join(OPTION_TRANSLATIONS)
            raise ValueError(
                f"make_clip: ffmpeg option {name} {value} has no PyAV translation in "
                f"tests/clips.py (translated: {known})"
            )
    return options


def make_clip(
    path: Path,
    duration: float = 2.0,
    rate: str = "25",
    size: str = "160x120",
    extra_input: list[str] | None = None,
    extra_output: list[str] | None = None,
    source: str = "testsrc2",
) -> Path:
    """Generate a short test clip from a lavfi source with PyAV (no media committed to the repo).

    The options are the ffmpeg program's: `extra_input` and `extra_output` both follow its `-i`,
    so both are output options, as they were on the program's command line.
    """
    # `extra_output=[]` gets the default too, as it did on the program's command line.
    args = [*(extra_input or []), *(extra_output or ["-pix_fmt", "yuv420p"])]
    options = parse_output_options(args)
    graph = ",".join([f"{source}=duration={duration}:rate={rate}:size={size}", *options.filters])
    with av.open(graph, format="lavfi") as lavfi:
        frames = lavfi.decode(video=0)
        write_clip(path, lavfi.streams.video[0], frames, options)
    return path


def write_clip(
    path: Path, source: VideoStream, frames: Iterator[VideoFrame], options: ClipOptions
) -> None:
    container_options = {"max_delay": PROGRAM_MAX_DELAY_US, **options.container_options}
    with av.open(
        output_url(path),
        "w",
        format=options.container_format,
        container_options=container_options,
    ) as out:
        codec = encoder(options.codec or out.default_video_codec)
        converted = to_pixel_format(source, frames, format_filters(codec, options.pix_fmt))
        first = next(converted)
        # The program's encoder rate is the filtered stream's, 25 where it has none.
        rate = source.average_rate or Fraction(25)
        # libavcodec's defaults that PyAV's add_stream replaces and the program keeps: the
        # encoder's own bit rate (mpeg2video: 200 kb/s; PyAV: 0), the tolerance, both kinds of
        # threads (PyAV: slices only, and libx264 then makes sliced threads).
        stream = out.add_stream(
            codec.name,
            rate=rate,
            options=codec_options(codec, options),
            bit_rate=av.CodecContext.create(codec, "w").bit_rate or 0,
            bit_rate_tolerance=LAVC_BIT_RATE_TOLERANCE,
        )
        assert isinstance(stream, VideoStream)
        stream.codec_context.thread_type = ThreadType.AUTO
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, first.format.name
        time_base = 1 / rate  # the program's encoder time base
        stream.codec_context.time_base = time_base
        timed = program_timestamps(itertools.chain([first], converted), time_base, options)
        for frame in timed:
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def program_timestamps(
    frames: Iterable[VideoFrame], time_base: Fraction, options: ClipOptions
) -> Iterator[VideoFrame]:
    """The frames with their own pts in encoder ticks, as the program hands them to the encoder."""
    previous: int | None = None
    step: int | None = None
    for frame in frames:
        if frame.pts is None or frame.time_base is None:
            raise ValueError("make_clip: a source frame without a time")
        ticks = round(frame.pts * frame.time_base / time_base)
        pts: int | None = ticks
        if previous is not None and options.variable_rate:
            pts = vfr_pts(ticks, previous)
        elif previous is not None:
            step = check_constant_rate(ticks - previous, step)
        if pts is None:
            continue
        previous = pts
        frame.pts, frame.time_base = pts, time_base
        # The source marks every frame a keyframe; the program clears that (else the encoder
        # makes each frame an I-frame).
        frame.pict_type = PictureType.NONE
        yield frame


def output_url(path: Path) -> str:
    # `file:` keeps a name with a ':' from being read as a protocol, as zsar's probe does.
    return "file:" + str(path.resolve())


def encoder(name: str) -> av.Codec:
    """The encoder for a codec or encoder name, as the program picks it (h264: libx264)."""
    codec = av.Codec(name, "w")
    if codec.name not in CHECKED_ENCODERS:
        raise ValueError(
            f"make_clip: encoder {codec.name} (-c:v or the container's default) has no checked "
            f"PyAV translation in tests/clips.py (checked: {', '.join(sorted(CHECKED_ENCODERS))})"
        )
    return codec


def format_filters(codec: av.Codec, pix_fmt: str | None) -> list[str]:
    """The `format` filters that give the encoder the program's pixel format.

    Without -pix_fmt, every format the encoder takes: lavfi picks the one closest to the
    source's, as in the program (a gif: bgr8 from yuv420p, not the first, rgb8). A -pix_fmt the
    encoder does not take is replaced by its closest one, as the program does ("Incompatible
    pixel format 'yuv420p' for codec 'gif', auto-selecting format 'bgr8'").
    """
    supported = "|".join(f.name for f in codec.video_formats or ())
    if pix_fmt is None:
        return [supported]
    if not supported or pix_fmt in supported.split("|"):
        return [pix_fmt]
    return [pix_fmt, supported]


def codec_options(codec: av.Codec, options: ClipOptions) -> dict[str, str]:
    if codec.name == "libx264":
        # As zsar's own PyAV writer (zsar_cli.video_write): the wheel's x264 is not reproducible
        # with its AVX-512 assembly, and a test clip made twice must be the same clip.
        params = options.codec_options.get("x264-params")
        options.codec_options["x264-params"] = f"{params}:asm=0" if params else "asm=0"
    if options.qscale is None:
        return dict(options.codec_options)
    if codec.name not in QSCALE_ENCODERS:
        raise ValueError(
            f"make_clip: -q:v with {codec.name} has no PyAV translation in tests/clips.py "
            f"(checked: {', '.join(sorted(QSCALE_ENCODERS))})"
        )
    q = str(options.qscale)
    # The program also sets each frame's quality to global_quality, and these encoders take
    # their quantizer from the frame's; PyAV frames have none, so qmin = qmax pins it.
    return {
        **options.codec_options,
        "flags": "+qscale",
        "global_quality": str(options.qscale * FF_QP2LAMBDA),
        "qmin": q,
        "qmax": q,
    }


def to_pixel_format(
    source: VideoStream, frames: Iterator[VideoFrame], pix_fmts: list[str]
) -> Iterator[VideoFrame]:
    """Frames through `format` filters, as the program converts them for its encoder. A graph of
    its own: inside the source's graph, testsrc2 would draw in the format (gray for a gif)."""
    graph = av.filter.Graph()
    formats = [graph.add("format", "pix_fmts=" + names) for names in pix_fmts]
    graph.link_nodes(graph.add_buffer(template=source), *formats, graph.add("buffersink"))
    graph.configure()
    for frame in frames:
        graph.push(frame)
        yield from pull_all(graph)
    graph.push(None)
    yield from pull_all(graph)


def pull_all(graph: av.filter.Graph) -> Iterator[VideoFrame]:
    while True:
        try:
            frame = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return
        assert isinstance(frame, VideoFrame)
        yield frame


def vfr_pts(pts: int, previous: int) -> int | None:
    """A frame's time in encoder ticks as the program's -fps_mode vfr sets it: one at its
    predecessor's time moves a tick on, one before it is dropped (None). setpts truncates
    (21 + 8) / 25 / (1/25) to 28, so vfr.mp4's frame 21 lands on 29, where the program put it."""
    if pts < previous:
        return None
    return max(pts, previous + 1)


def check_constant_rate(step: int, expected: int | None) -> int:
    """The program makes variable-rate frames constant-rate for some containers (mp4, avi);
    here they keep their times, so a test must say -fps_mode vfr to get them."""
    if expected is not None and step != expected:
        raise ValueError(
            "make_clip: the frames are at a variable rate: add -fps_mode vfr to keep their "
            "times (the ffmpeg program would duplicate or drop frames otherwise)"
        )
    return step


def make_audio(path: Path, duration: float = 1.0, source: str = "sine") -> Path:
    """A file with one audio stream and no video from a lavfi source, in the container's default
    audio codec, as `ffmpeg -f lavfi -i sine=duration=1 audio.m4a` makes it (aac)."""
    with (
        av.open(f"{source}=duration={duration}", format="lavfi") as lavfi,
        av.open(output_url(path), "w") as out,
    ):
        audio = lavfi.streams.audio[0]
        stream = out.add_stream(out.default_audio_codec, rate=audio.rate, layout=audio.layout.name)
        assert isinstance(stream, AudioStream)
        for frame in lavfi.decode(audio):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_clip_with_ffmpeg(
    path: Path,
    duration: float = 2.0,
    rate: str = "25",
    size: str = "160x120",
    extra_input: list[str] | None = None,
    extra_output: list[str] | None = None,
    source: str = "testsrc2",
) -> Path:
    """The same clip made by the ffmpeg program (`ffmpeg -f lavfi`): the reference `make_clip`
    is checked against, and nothing else (the tests run without the program)."""
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"{source}=duration={duration}:rate={rate}:size={size}",
        *(extra_input or []),
        *(extra_output or ["-pix_fmt", "yuv420p"]),
        str(path),
    ]
    subprocess.run(cmd, check=True)
    return path
