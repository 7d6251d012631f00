"""Encoding through `zsar_cli.video`: what `write_video` and `loop_video` write decodes back to the
frames given (exactly for a lossless codec), and failures leave no partial file. Every test runs
with both encoders (the ffmpeg program, skipped where it is missing, and PyAV's libraries), and
the two are compared with each other."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.conftest import needs_ffmpeg
from zsar_cli.errors import VideoError
from zsar_cli.video import decode, loop_video, plan_sampling, probe, write_video

WIDTH, HEIGHT, FPS = 64, 48, 10


def random_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(autouse=True, params=["ffmpeg", "pyav"])
def encoder(request, monkeypatch) -> str:
    if request.param == "ffmpeg":
        needs_ffmpeg()
    monkeypatch.setenv("ZSAR_ENCODER", request.param)
    return request.param


def moving_square(count: int, seed: int = 0, noise: int = 35) -> list[np.ndarray]:
    """A gradient (plus noise) with a square moving across it: motion and texture for an
    inter-frame codec."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 190, 320)[None, :, None] + np.zeros((240, 1, 3))
    base = np.clip(ramp + rng.integers(0, noise + 1, (240, 320, 3)), 0, 255).astype(np.uint8)
    frames = []
    for i in range(count):
        frame = base.copy()
        frame[40 + 3 * i : 90 + 3 * i, 30 + 7 * i : 80 + 7 * i] = (210, 40, 40)
        frames.append(frame)
    return frames


def decoded(path) -> tuple[list[float], list[np.ndarray]]:
    info = probe(path)
    pairs = list(decode(info, plan_sampling(info, all_frames=True)))
    return [t for t, _ in pairs], [f for _, f in pairs]


def test_lossless_round_trip_is_exact(tmp_path):
    # ffv1 in an RGB pixel format is lossless, so every pixel must come back as written.
    frames = random_frames(7)
    path = tmp_path / "clip.mkv"
    written = write_video(iter(frames), path, FPS, (WIDTH, HEIGHT), "ffv1", pix_fmt="bgr0")
    assert written == 7
    info = probe(path)
    assert (info.width, info.height, info.codec) == (WIDTH, HEIGHT, "ffv1")
    times, back = decoded(path)
    assert len(back) == 7
    np.testing.assert_allclose(times, np.arange(7) / FPS, atol=1e-3)
    for given, got in zip(frames, back, strict=True):
        np.testing.assert_array_equal(got, given)


def test_lossy_codec_keeps_count_size_and_pixels_within_tolerance(tmp_path):
    # Smooth gradients survive 4:2:0 H.264 at high quality with only small errors.
    ramp = np.linspace(0, 255, WIDTH, dtype=np.float32)[None, :, None]
    frames = [
        np.clip(ramp + 10 * i + np.zeros((HEIGHT, 1, 3), np.float32), 0, 255).astype(np.uint8)
        for i in range(5)
    ]
    path = tmp_path / "clip.mp4"
    assert write_video(frames, path, FPS, (WIDTH, HEIGHT), "libx264", output_args={"crf": 10}) == 5
    _, back = decoded(path)
    assert len(back) == 5
    for given, got in zip(frames, back, strict=True):
        assert got.shape == given.shape
        assert np.abs(got.astype(int) - given.astype(int)).mean() < 3


def test_wrong_frame_shape_raises_and_removes_the_file(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [*random_frames(2), np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"frame 2: expected \(48, 64, 3\) uint8"):
        write_video(frames, path, FPS, (WIDTH, HEIGHT), "libx264")
    assert not path.exists()


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("clip.webm", "mjpeg"),  # the container cannot hold it
        ("clip.mp4", "no-such-encoder"),
        ("clip.mp4", "libx264"),  # the encoder refuses an option value when it opens
    ],
)
def test_encoding_failure_is_a_video_error_without_a_file(tmp_path, name, codec):
    path = tmp_path / name
    args = {"preset": "no-such-preset"} if codec == "libx264" else None
    with pytest.raises(VideoError, match="encode") as info:
        write_video(random_frames(2), path, FPS, (WIDTH, HEIGHT), codec, output_args=args)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_loop_video_repeats_the_unit_by_stream_copy(tmp_path):
    unit = random_frames(4, seed=1)
    unit_path = tmp_path / "unit.mkv"
    write_video(unit, unit_path, FPS, (WIDTH, HEIGHT), "ffv1", pix_fmt="bgr0")
    path = loop_video(unit_path, tmp_path / "long.mkv", 10)
    _, back = decoded(path)
    assert len(back) == 10
    for i, got in enumerate(back):
        np.testing.assert_array_equal(got, unit[i % 4])


def test_loop_of_an_h264_unit_continues_its_timestamps(tmp_path):
    # As generate_background_video writes its unit: one closed GOP, no B-frames.
    unit = moving_square(5)
    gop = {"g": 5, "bf": 0, "x264-params": "open-gop=0:scenecut=0", "crf": 18}
    write_video(unit, tmp_path / "unit.mp4", FPS, (320, 240), "libx264", output_args=gop)
    times, back = decoded(loop_video(tmp_path / "unit.mp4", tmp_path / "long.mp4", 12))
    np.testing.assert_allclose(times, np.arange(12) / FPS, atol=1e-3)
    for i, got in enumerate(back):  # the same packets again: the same pixels
        np.testing.assert_array_equal(got, back[i % 5])


def test_same_frames_make_the_same_file(tmp_path, encoder):
    # A same-seed world must be the same video; PyAV's libx264 is not reproducible with its
    # AVX-512 assembly (zsar_cli.video_write), hence this check, several encodes in one process.
    frames = moving_square(17)
    digests = set()
    for k in range(4):
        path = tmp_path / f"c{k}.mp4"
        write_video(frames, path, 25, (320, 240), "libx264", output_args={"preset": "veryfast"})
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_constant_quantizer_takes_effect(tmp_path):
    # q:v is a constant quantizer for mpeg4: a coarser one makes a smaller file.
    sizes = []
    for q in (2, 20):
        path = tmp_path / f"q{q}.avi"
        write_video(moving_square(10), path, FPS, (320, 240), "mpeg4", output_args={"q:v": q})
        sizes.append(path.stat().st_size)
    assert sizes[0] > 2 * sizes[1]


def test_the_two_encoders_agree(tmp_path, encoder, monkeypatch):
    if encoder != "pyav":
        pytest.skip("compared once")
    needs_ffmpeg()
    frames = moving_square(9, noise=0)
    got = {}
    for name in ("ffmpeg", "pyav"):
        monkeypatch.setenv("ZSAR_ENCODER", name)
        lossless = tmp_path / f"{name}.mkv"
        write_video(frames, lossless, FPS, (320, 240), "ffv1", pix_fmt="bgr0")
        lossy = tmp_path / f"{name}.mp4"
        write_video(frames, lossy, FPS, (320, 240), "libx264", output_args={"crf": 18})
        got[name] = (decoded(lossless), decoded(lossy), probe(lossy))
    (t_a, f_a), (lt_a, lf_a), info_a = got["ffmpeg"]
    (t_b, f_b), (lt_b, lf_b), info_b = got["pyav"]
    np.testing.assert_allclose(t_a, t_b, atol=1e-6)
    for a, b in zip(f_a, f_b, strict=True):
        np.testing.assert_array_equal(a, b)  # lossless: the very frames given, both ways
    np.testing.assert_allclose(lt_a, lt_b, atol=1e-6)
    facts = [(i.codec, i.width, i.height, i.frame_count_estimate) for i in (info_a, info_b)]
    assert facts[0] == facts[1]
    assert info_a.start_time == pytest.approx(info_b.start_time, abs=1e-6)
    for a, b, given in zip(lf_a, lf_b, frames, strict=True):
        # Two H.264 encodes of the same frames: each close to the frames, so to each other.
        assert np.abs(a.astype(int) - given).mean() < 3
        assert np.abs(b.astype(int) - given).mean() < 3
