"""Frame image bytes ⇄ RGB arrays, for the `image` column of `frames` artifacts.

`zsar.image_encoding` in the artifact metadata says how `image` is stored: "jpeg", "png", or
"raw" (packed RGB24, width×height×3 bytes, shape from the row's width/height columns).
"""

from __future__ import annotations

import io

import numpy as np

from zsar_cli.stages.extract_frames_config import IMAGE_FORMATS


def encode_image(rgb: np.ndarray, image_format: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an H×W×3 uint8 array."""
    if image_format == "raw":
        return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(rgb, mode="RGB") if rgb.ndim == 3 else Image.fromarray(rgb)
    if image_format == "jpeg":
        img.save(buf, format="JPEG", quality=int(quality))
    elif image_format == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        raise ValueError(
            f"unknown image format {image_format!r} (known: {', '.join(IMAGE_FORMATS)})"
        )
    return buf.getvalue()


def decode_image(data: bytes, image_format: str, width: int, height: int) -> np.ndarray:
    """Decode one stored frame to an H×W×3 uint8 array."""
    if image_format == "raw":
        return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def image_encoding(meta_extra: dict[str, str]) -> str:
    """The frames artifact's image encoding, from ArtifactMeta.extra."""
    return meta_extra.get("image_encoding", "jpeg").strip('"')
