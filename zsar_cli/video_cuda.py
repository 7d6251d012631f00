"""GPU decoding (`--decode-device cuda`): NVDEC through torchcodec, an optional extra
(`pip install 'zsar[gpu-decode]'`; torchcodec uses the FFmpeg libraries of the system).

Input: a video file. Output: `TorchcodecCudaReader`, the same contract as the CPU readers of
`zsar_cli.video`: the probe, the inputs' safety checks and the frame choice are PyAV's (so the
same plan keeps the same frames, by presentation time), torchcodec decodes the chosen frames on
the GPU, and the resize runs there too (bicubic, antialiased) before the frames come back as
H×W×3 uint8 arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import ConfigError
from zsar_cli.probe import DecodeLimits
from zsar_cli.sampling import FramePicker, SamplingPlan, output_size, short_end

# Frames decoded per torchcodec call: bounds GPU memory for long plans.
BATCH_FRAMES = 32
INSTALL_HINT = "pip install 'zsar[gpu-decode]'"


def check_cuda() -> None:
    """ConfigError in one line when torchcodec or a CUDA device is missing."""
    try:
        import torch
    except ImportError:
        raise ConfigError(
            f"--decode-device cuda needs torch and torchcodec ({INSTALL_HINT})"
        ) from None
    try:
        import torchcodec  # noqa: F401
    except (ImportError, RuntimeError, OSError) as exc:
        raise ConfigError(
            f"--decode-device cuda needs torchcodec ({INSTALL_HINT}): {str(exc).splitlines()[0]}"
        ) from None
    if not torch.cuda.is_available():
        raise ConfigError("--decode-device cuda: no CUDA device is available to torch")


def version() -> str:
    import torchcodec

    return f"torchcodec {torchcodec.__version__} cuda (NVDEC)"


class TorchcodecCudaReader:
    """One video decoded on the GPU; probed and planned with PyAV. (`device="cpu"` runs the
    same code on torchcodec's CPU decoder: the tests use it where no GPU is lent.)"""

    decoder = "torchcodec-cuda"

    def __init__(
        self, path: Path, limits: DecodeLimits | None = None, device: str = "cuda"
    ) -> None:
        from zsar_cli.pyav_index import packet_times
        from zsar_cli.video_pyav import PyAVReader

        if device.startswith("cuda"):
            check_cuda()
        self.path = path
        self.limits = limits or DecodeLimits()
        # PyAV first: it refuses playlists and oversized frames before torchcodec opens the file.
        with PyAVReader(path, self.limits, threads=1) as probe:
            self.info = probe.info
            self._index = probe.frame_index()
            self._times = packet_times(path, self.limits, probe.stream.index)
            stream_index = probe.stream.index
        from torchcodec.decoders import VideoDecoder

        self._decoder: Any = VideoDecoder(
            str(path), stream_index=stream_index, device=device, seek_mode="exact"
        )
        self._last_pts: float | None = None
        self._short = False

    def __enter__(self) -> TorchcodecCudaReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._decoder = None

    def frames(
        self, plan: SamplingPlan, size: int | None = None
    ) -> Iterator[tuple[float, np.ndarray]]:
        picker = FramePicker(plan)
        chosen = []
        for i, t in enumerate(self._times):
            if picker.done:
                break
            if picker.offer(float(t)):
                chosen.append(i)
        self._short = not picker.done  # the stream ended before the window did
        out = output_size(self.info, size)
        for start in range(0, len(chosen), BATCH_FRAMES):
            batch = self._decoder.get_frames_at(indices=chosen[start : start + BATCH_FRAMES])
            images = self._to_rgb(batch.data, out)
            for pts, rgb in zip(batch.pts_seconds.tolist(), images, strict=True):
                self._last_pts = float(pts)
                yield float(pts), rgb

    def _to_rgb(self, data: Any, out: tuple[int, int]) -> list[np.ndarray]:
        import torch

        width, height = out
        turns = (self.info.rotation % 360) // 90
        # torchcodec (0.17) applies the display rotation; an older one may not.
        if turns % 2 and (data.shape[-1] > data.shape[-2]) != (self.info.width > self.info.height):
            data = torch.rot90(data, k=turns, dims=(-2, -1))
        if (data.shape[-1], data.shape[-2]) != (width, height):
            data = torch.nn.functional.interpolate(
                data.float(), size=(height, width), mode="bicubic", antialias=True
            )
            data = data.round().clamp(0, 255).to(torch.uint8)
        return list(data.permute(0, 2, 3, 1).contiguous().cpu().numpy())

    def decoded_end(self) -> float | None:
        if not self._short or self._last_pts is None:
            return None
        return short_end(self.info, self._last_pts)

    def frame_index(self) -> Callable[[float], int]:
        return self._index
