"""Encoding through `zsar_cli.video`: what `write_video` and `loop_video` write decodes back to the
frames given (exactly for a lossless codec), and failures leave no partial file."""

from __future__ import annotations

import numpy as np
import pytest

from zsar_cli.errors import VideoError
from zsar_cli.video import decode, loop_video, plan_sampling, probe, write_video

WIDTH, HEIGHT, FPS = 64, 48, 10


def random_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


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


def test_ffmpeg_failure_is_a_video_error_without_a_file(tmp_path):
    path = tmp_path / "clip.mp4"
    # ffv1 is not allowed in mp4: ffmpeg refuses to open the output.
    with pytest.raises(VideoError, match="ffmpeg could not encode the video"):
        write_video(random_frames(2), path, FPS, (WIDTH, HEIGHT), "ffv1")
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
