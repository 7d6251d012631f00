"""Frame images: the in-memory-file encoder gives the bytes Pillow gives through a BytesIO, from
any thread (and in a forked child), and the frames artifact stores its JPEGs as written."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from zsar_cli.images import decode_image, encode_image
from zsar_cli.stages.extract_frames import ExtractConfig, run
from zsar_cli.video import write_video


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 200, 96)[None, :, None]
    return [
        np.clip(ramp + rng.integers(0, 40, (64, 96, 3)), 0, 255).astype(np.uint8) for _ in range(n)
    ]


def pillow_bytes(rgb: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    params = {"quality": quality} if fmt == "JPEG" else {"compress_level": 1}
    Image.fromarray(rgb).save(buf, format=fmt, **params)
    return buf.getvalue()


@pytest.mark.parametrize(("image_format", "pillow"), [("jpeg", "JPEG"), ("png", "PNG")])
def test_encoded_bytes_are_pillows_from_every_thread(image_format, pillow):
    images = frames(6)
    expected = [pillow_bytes(f, pillow) for f in images]
    assert [encode_image(f, image_format) for f in images] == expected
    got: dict[int, list[bytes]] = {}

    def work(k: int) -> None:
        got[k] = [encode_image(f, image_format) for f in images]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[k] == expected for k in range(3))
    back = decode_image(expected[0], image_format, 96, 64)
    assert back.shape == (64, 96, 3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_encodes_into_its_own_file():
    image = frames(1)[0]
    expected = pillow_bytes(image, "JPEG")
    assert encode_image(image) == expected  # the parent's scratch file exists now
    read, write = os.pipe()
    pid = os.fork()
    # Both encode at once: a file (and offset) shared with the parent would mix their bytes.
    ok = all(encode_image(image) == expected for _ in range(200))
    if pid == 0:
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert ok


def test_frames_artifact_stores_jpegs_uncompressed_and_without_a_dictionary(tmp_path):
    clip = tmp_path / "c.mkv"
    write_video(frames(5), clip, 5, (96, 64), "ffv1", pix_fmt="bgr0")
    out = tmp_path / "f.parquet"
    run([clip], out, ExtractConfig(num_frames=3))
    meta = pq.ParquetFile(out).metadata.row_group(0)
    columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    # JPEG bytes do not compress and never repeat: zstd and a dictionary would only cost time.
    assert columns["image"].compression == "UNCOMPRESSED"
    assert "RLE_DICTIONARY" not in columns["image"].encodings
    assert columns["video_id"].compression == "ZSTD"
    assert "RLE_DICTIONARY" in columns["video_id"].encodings
