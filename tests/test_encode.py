"""Library tests of the open_clip backend and the `encode` / `encode-text` stages.

Parity: embeddings written by `encode` equal a direct open_clip forward (the model built and
loaded by open_clip itself, the transform open_clip returns) on the same decoded frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from zsar_cli import synthetic
from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.backends import revision as rev
from zsar_cli.errors import ArtifactError, ConfigError, ModelError
from zsar_cli.images import decode_image, encode_image

TINY_ARCH = "zsar-test-tiny"
TINY_CONFIG = {
    "zsar_arch": TINY_ARCH,
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "patch_size": 8,
            "width": 32,
            "head_width": 16,
            "layers": 1,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 16,
            "heads": 1,
            "layers": 1,
        },
    },
}


def make_tiny_clip(folder: Path, seed: int = 0, fmt: str = "safetensors") -> Path:
    """A random-init tiny open_clip model saved like a user checkpoint; returns the weights path."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CONFIG))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = folder / "tiny.safetensors"
        save_file(state, str(path))
    else:
        path = folder / "tiny.pt"
        torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def world_frames(seed: int, per_label: int = 1, labels=None) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for label in labels or synthetic.LABELS:
        for _ in range(per_label):
            w = int(rng.integers(160, 400))
            h = int(rng.integers(120, 300))
            obj = synthetic.random_object(rng, w, h, label)
            frame = synthetic.render_frame(
                w, h, [obj], background=int(rng.integers(90, 171)), rng=rng
            )
            out.append((label, frame))
    return out


def write_frames(
    path: Path,
    videos: dict[str, list[np.ndarray]],
    errors: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """A `frames` artifact (JPEG) written directly, with error rows for `errors`."""
    cols: dict[str, list] = {
        k: []
        for k in (
            "video_id",
            "path",
            "label",
            "frame_index",
            "timestamp",
            "segment",
            "width",
            "height",
            "image",
            "error",
        )
    }
    for vid in sorted({*videos, *(errors or {})}):
        if errors and vid in errors:
            rows = [(None, None, None, None, None, errors[vid])]
        else:
            rows = [
                (i, i / 25, f.shape[1], f.shape[0], encode_image(f, "jpeg", 90), None)
                for i, f in enumerate(videos[vid])
            ]
        for frame_index, ts, w, h, image, err in rows:
            cols["video_id"].append(vid)
            cols["path"].append(f"/videos/{vid}.mp4")
            cols["label"].append((labels or {}).get(vid))
            cols["frame_index"].append(frame_index)
            cols["timestamp"].append(ts)
            cols["segment"].append(-1 if err is None else None)
            cols["width"].append(w)
            cols["height"].append(h)
            cols["image"].append(image)
            cols["error"].append(err)
    write_artifact(
        build_table("frames", cols),
        path,
        "frames",
        {"num_frames": 8},
        upstream=["videos:test"],
        extra_metadata={"image_encoding": "jpeg"},
    )
    return path


def direct_open_clip(weights: Path, images: list[np.ndarray], texts: list[str] | None = None):
    """Independent reference: open_clip's own factory, transform and forward."""
    import open_clip
    import torch
    from PIL import Image

    name = f"local-dir:{weights.parent}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, load_weights=False)
    open_clip.load_checkpoint(model, str(weights))
    model.eval()
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(im)) for im in images])
        img = model.encode_image(pixels)
        img = (img / img.norm(dim=-1, keepdim=True)).numpy()
        if texts is None:
            return img
        tok = open_clip.get_tokenizer(name)(texts)
        txt = model.encode_text(tok)
        return img, (txt / txt.norm(dim=-1, keepdim=True)).numpy()


def _decoded(frames_path: Path) -> list[np.ndarray]:
    table = read_artifact(frames_path, "frames").table.to_pydict()
    return [
        decode_image(b, "jpeg", w, h)
        for b, w, h, e in zip(
            table["image"], table["width"], table["height"], table["error"], strict=True
        )
        if e is None
    ]


def _rows_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


# ---------------------------------------------------------------------------------------------
# Backend


def test_checkpoint_spec_parity_with_direct_open_clip(tiny_clip):
    from zsar_cli.backends import load_encoder

    enc = load_encoder(f"openclip:{TINY_ARCH}@{tiny_clip}", device="cpu", batch_size=3)
    frames = [f for _, f in world_frames(1, labels=synthetic.LABELS[:5])]
    texts = ["a red circle", "a video of a blue square."]
    ref_img, ref_txt = direct_open_clip(tiny_clip, frames, texts)
    got = enc.encode_images(frames)
    assert got.shape == (5, 32) and got.dtype == np.float32
    assert _rows_cosine(got, ref_img).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert _rows_cosine(enc.encode_texts(texts), ref_txt).min() >= 0.9999
    # The same spec and options give the same object: one model load per process.
    assert load_encoder(f"openclip:{TINY_ARCH}@{tiny_clip}", device="cpu") is enc


def test_torch_state_dict_checkpoint_loads_weights_only(tmp_path, tiny_clip):
    from zsar_cli.backends import load_encoder

    pt = make_tiny_clip(tmp_path / "pt", fmt="pt")
    frames = [f for _, f in world_frames(2, labels=synthetic.LABELS[:2])]
    enc = load_encoder(f"openclip:{TINY_ARCH}@{pt}", device="cpu")
    assert _rows_cosine(enc.encode_images(frames), direct_open_clip(pt, frames)).min() >= 0.9999


def test_pickled_objects_are_never_loaded(tmp_path):
    import torch

    from zsar_cli.backends import load_encoder

    folder = tmp_path / "evil"
    make_tiny_clip(folder)
    (folder / "tiny.safetensors").unlink()
    torch.save({"state_dict": {"x": torch.zeros(1)}, "config": Path("/etc")}, folder / "evil.pt")
    with pytest.raises(ModelError, match="not a loadable"):
        load_encoder(f"openclip:{TINY_ARCH}@{folder / 'evil.pt'}", device="cpu")


def test_patch_tokens_are_projected_ln_post_tokens(tiny_clip):
    import open_clip
    import torch
    from PIL import Image

    from zsar_cli.backends import load_encoder

    enc = load_encoder(f"openclip:{TINY_ARCH}@{tiny_clip}", device="cpu")
    frames = [f for _, f in world_frames(3, labels=synthetic.LABELS[:2])]
    emb, tokens = enc.encode_images_with_patches(frames)
    assert enc.patch_grid == (4, 4) and tokens.shape == (2, 16, 32)
    np.testing.assert_allclose(emb, enc.encode_images(frames), atol=1e-6)
    # Reference built from open_clip's forward_intermediates, independent of output_tokens.
    model, _, preprocess = open_clip.create_model_and_transforms(
        f"local-dir:{tiny_clip.parent}", load_weights=False
    )
    open_clip.load_checkpoint(model, str(tiny_clip))
    model.eval()
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(f)) for f in frames])
        x = model.visual._embeds(pixels)
        x = model.visual.transformer(x)
        x = model.visual.ln_post(x)[:, 1:] @ model.visual.proj
        ref = torch.nn.functional.normalize(x, dim=-1).numpy()
    np.testing.assert_allclose(tokens, ref, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nope:model", r"unknown encoder scheme 'nope'.*known: openclip, builtin"),
        ("ViT-B-32", r"no scheme; known encoder schemes: openclip, builtin"),
        (
            "openclip:NoSuchNet/laion",
            r"unknown open_clip architecture 'NoSuchNet'; known: .*ViT-B-32",
        ),
        (
            "openclip:ViT-B-32/nosuchtag",
            r"unknown pretrained tag 'nosuchtag' for ViT-B-32; known: .*laion2b",
        ),
        ("openclip:ViT-B-32", r"give a pretrained tag or a checkpoint"),
        ("builtin:nothing", r"unknown built-in encoder 'nothing'; known: builtin:world-clip"),
    ],
)
def test_unknown_specs_list_what_is_known(spec, match):
    from zsar_cli.backends import load_encoder

    with pytest.raises(ModelError, match=match):
        load_encoder(spec, device="cpu")


def test_unknown_arch_for_checkpoint_without_config(tmp_path):
    from zsar_cli.backends import load_encoder

    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"unknown open_clip architecture 'Mystery'.*known: RN50"):
        load_encoder(f"openclip:Mystery@{path}", device="cpu")


def test_checkpoint_missing_or_not_a_checkpoint(tmp_path, tiny_clip):
    from zsar_cli.backends import load_encoder

    with pytest.raises(ModelError, match=r"checkpoint .*missing.safetensors: no such file"):
        load_encoder(f"openclip:{TINY_ARCH}@{tiny_clip.parent / 'missing.safetensors'}")
    junk = tiny_clip.parent / "junk.safetensors"
    junk.write_text("this is not a checkpoint")
    with pytest.raises(
        ModelError, match=r"junk.safetensors: not a loadable zsar-test-tiny checkpoint"
    ):
        load_encoder(f"openclip:{TINY_ARCH}@{junk}", device="cpu")
    other = make_tiny_clip(tmp_path / "other")
    cfg = json.loads((other.parent / "open_clip_config.json").read_text())
    cfg["model_cfg"]["embed_dim"] = 24
    cfg["zsar_arch"] = "wider"
    (other.parent / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="not a loadable wider checkpoint"):
        load_encoder(f"openclip:wider@{other}", device="cpu")
    with pytest.raises(ModelError, match="describes 'wider', not 'zsar-test-tiny'"):
        load_encoder(f"openclip:{TINY_ARCH}@{other}", device="cpu")


def test_default_spec_offline_says_how_to_work_offline(monkeypatch, tmp_path):
    from zsar_cli.backends import load_encoder

    # An empty cache and offline mode: exactly the situation of a machine without network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelError) as info:
        load_encoder("openclip:RN50/openai", device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert "cannot download" in message
    assert "openclip:ViT-B-32@/path/model.safetensors" in message and "HF_HOME" in message


def test_bad_device_and_precision(tiny_clip):
    from zsar_cli.backends import load_encoder

    with pytest.raises(ConfigError, match="--precision 'fp8'"):
        load_encoder(f"openclip:{TINY_ARCH}@{tiny_clip}", precision="fp8")
    with pytest.raises(ConfigError, match="--device 'tpu'"):
        load_encoder(f"openclip:{TINY_ARCH}@{tiny_clip}", device="tpu")


# ---------------------------------------------------------------------------------------------
# encode stage


def test_encode_stage_parity_and_error_rows(tmp_path, tiny_clip):
    from zsar_cli.stages.encode import EncodeConfig, run

    frames = world_frames(4, labels=synthetic.LABELS[:6])
    videos = {"v1": [f for _, f in frames[:4]], "v2": [f for _, f in frames[4:]]}
    src = write_frames(tmp_path / "frames.parquet", videos, errors={"v0": "cannot open"})
    cfg = EncodeConfig(
        model=f"openclip:{TINY_ARCH}@{tiny_clip}", device="cpu", batch_size=4, dtype="float32"
    )
    summary = run(src, tmp_path / "emb.parquet", cfg)
    assert (summary.videos, summary.failed, summary.frames) == (3, 1, 7)
    art = read_artifact(tmp_path / "emb.parquet", "embeddings")
    table = art.table.to_pydict()
    assert table["video_id"] == ["v0"] + ["v1"] * 4 + ["v2"] * 2
    assert table["error"][0] == "cannot open" and table["embedding"][0] is None
    assert table["frame_index"][1:5] == [0, 1, 2, 3]
    got = np.array(table["embedding"][1:], dtype=np.float32)
    ref = direct_open_clip(tiny_clip, _decoded(src))
    assert _rows_cosine(got, ref).min() >= 0.9999
    # the frames, and the weights the spec resolved to (their content hash)
    digest = rev.model_revision(cfg.model)
    assert digest.startswith("sha256:")
    assert art.meta.upstream == [read_artifact(src).meta.cache_key, f"model:{digest}"]
    assert art.meta.extra_json("model_spec") == cfg.model
    assert art.meta.extra_json("embedding_dim") == 32
    assert "Resize" in art.meta.extra_json("preprocess")
    assert art.table.schema.field("embedding").type == pa.list_(pa.float32())


def test_encode_float16_and_patch_tokens(tmp_path, tiny_clip):
    from zsar_cli.backends import load_encoder
    from zsar_cli.stages.encode import EncodeConfig, run

    frames = [f for _, f in world_frames(5, labels=synthetic.LABELS[:3])]
    src = write_frames(tmp_path / "frames.parquet", {"v": frames})
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    run(src, tmp_path / "emb.parquet", EncodeConfig(model=spec, device="cpu", patch_tokens=True))
    art = read_artifact(tmp_path / "emb.parquet", "embeddings")
    assert art.table.schema.field("embedding").type == pa.list_(pa.float16())
    assert art.meta.extra_json("patch_grid") == [4, 4]
    assert art.meta.extra_json("patch_dim") == 32
    tokens = np.array(art.table.column("patch_tokens").to_pylist(), dtype=np.float32)
    assert tokens.shape == (3, 16 * 32)
    _, ref_tokens = load_encoder(spec, device="cpu").encode_images_with_patches(_decoded(src))
    np.testing.assert_allclose(tokens.reshape(3, 16, 32), ref_tokens, atol=2e-3)  # float16
    emb = np.array(art.table.column("embedding").to_pylist(), dtype=np.float32)
    assert _rows_cosine(emb, direct_open_clip(tiny_clip, _decoded(src))).min() >= 0.9999


def test_encode_refuses_wrong_kind_and_bad_options(tmp_path, tiny_clip):
    from zsar_cli.stages.encode import EncodeConfig, run

    table = build_table(
        "predictions", {"video_id": ["v"], "label": ["x"], "score": [1.0], "rank": [1]}
    )
    write_artifact(table, tmp_path / "pred.parquet", "predictions", {})
    cfg = EncodeConfig(model=f"openclip:{TINY_ARCH}@{tiny_clip}", device="cpu")
    with pytest.raises(ArtifactError, match="expected a 'frames' artifact, found 'predictions'"):
        run(tmp_path / "pred.parquet", tmp_path / "out.parquet", cfg)
    with pytest.raises(ConfigError, match="--dtype 'int8'"):
        run(
            tmp_path / "pred.parquet",
            tmp_path / "out.parquet",
            EncodeConfig(model=cfg.model, dtype="int8"),
        )
    assert not (tmp_path / "out.parquet").exists()


def test_encode_text_stage(tmp_path, tiny_clip):
    from zsar_cli.stages.encode import PromptConfig, TextEncodeConfig, run_text

    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\n# c\na blue square\n")
    spec = f"openclip:{TINY_ARCH}@{tiny_clip}"
    cfg = TextEncodeConfig(model=spec, device="cpu", prompts=PromptConfig(templates="video"))
    summary = run_text(labels, tmp_path / "text.parquet", cfg)
    assert (summary.labels, summary.prompts) == (2, 16)
    art = read_artifact(tmp_path / "text.parquet", "text_embeddings")
    rows = art.table.to_pydict()
    assert rows["text"][0] == "a video of a red circle."
    assert set(rows["kind"]) == {"template"}
    assert art.meta.extra_json("labels") == ["a red circle", "a blue square"]
    _, ref = direct_open_clip(tiny_clip, [np.zeros((8, 8, 3), np.uint8)], rows["text"])
    assert _rows_cosine(np.array(rows["embedding"], dtype=np.float32), ref).min() >= 0.9999


def test_world_clip_parity(tmp_path):
    """The shipped world model through `encode` equals open_clip's own forward."""
    from zsar_cli.backends import builtin_encoder_spec
    from zsar_cli.stages.encode import EncodeConfig, run

    spec = builtin_encoder_spec("world-clip")
    weights = Path(spec.split("@", 1)[1])
    frames = [f for _, f in world_frames(6, labels=synthetic.LABELS[:4])]
    src = write_frames(tmp_path / "frames.parquet", {"v": frames})
    run(
        src,
        tmp_path / "emb.parquet",
        EncodeConfig(model="builtin:world-clip", device="cpu", dtype="float32"),
    )
    emb = np.array(
        read_artifact(tmp_path / "emb.parquet").table.column("embedding").to_pylist(),
        dtype=np.float32,
    )
    assert _rows_cosine(emb, direct_open_clip(weights, _decoded(src))).min() >= 0.9999
