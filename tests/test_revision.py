"""The resolved model revision in provenance (`zsar_cli.backends.revision`): a Hub snapshot's
commit, or the content hash of a local folder or checkpoint file, for LVLM and CLIP specs."""

from __future__ import annotations

import shutil

import pytest

from zsar_cli.backends import model_record
from zsar_cli.backends import revision as rev


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSAR_CACHE_DIR", str(tmp_path / "zsar-cache"))
    monkeypatch.setattr(rev, "_RESOLVED", {})


def model_folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "idefics3"}')
    (path / "model.safetensors").write_bytes(b"\x00" * 64)
    (path / ".DS_Store").write_bytes(b"junk")
    return path


def test_local_folder_revision_is_a_content_hash(tmp_path, monkeypatch):
    folder = model_folder(tmp_path / "m")
    first = model_record(f"hf:{folder}")["model_revision"]
    assert first.startswith("sha256:") and len(first) == 7 + 64
    # The same files elsewhere are the same model; one changed byte (same size) is not.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / ".DS_Store").write_bytes(b"other junk")
    assert rev.folder_content_digest(copy) == first
    (copy / "model.safetensors").write_bytes(b"\x00" * 63 + b"\x01")
    assert rev.folder_content_digest(copy) != first
    # Digests are remembered by path, size and mtime: a second look reads no file.
    monkeypatch.setattr(rev, "CHUNK", 0)  # reading would now loop forever on an empty chunk
    assert rev.folder_content_digest(folder) == first


def test_hub_model_revision_is_the_cached_snapshots_commit(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--Org--Tiny-VL" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_record("hf:Org/Tiny-VL")["model_revision"] == f"hub:{commit}"
    assert model_record("hf:Org/Not-Cached")["model_revision"] == ""


def test_clip_checkpoint_and_builtin_revisions(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    import hashlib

    expected = "sha256:" + hashlib.sha256(b"weights").hexdigest()
    assert model_record(f"openclip:ViT-B-32@{weights}")["model_revision"] == expected
    world = model_record("builtin:world-lvlm")
    assert world["model_revision"] == world["model_sha256"]
    assert model_record("openclip:ViT-B-32/laion2b_s34b_b79k")["model_revision"]


def test_encoder_metadata_records_the_revision():
    from zsar_cli.backends import load_encoder

    encoder = load_encoder("builtin:world-clip", device="cpu")
    described = encoder.describe()
    assert described["model_revision"] == described["model_sha256"]


def test_a_model_changed_under_the_same_spec_is_not_up_to_date(tmp_path, runner):
    """query-lvlm keys its answers by the model's revision: the same command after the weights
    changed is refused as other settings (exit 1, naming --force), never skipped as up to date."""
    from safetensors.torch import load_file, save_file

    from zsar_cli.artifacts import read_artifact
    from zsar_cli.cli.app import app

    from .test_query_lvlm_cli import fresh_frames
    from .tiny_lvlms import build_tiny_idefics3

    folder = build_tiny_idefics3(tmp_path / "tiny")
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    out = tmp_path / "answers.parquet"
    args = ["query-lvlm", str(frames), "-o", str(out), "-m", f"hf:{folder}", "--device", "cpu",
            "--question", "Is there any object in this frame?"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "up to date" in again.output, again.output
    weights = next(folder.glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, weights, metadata={"format": "pt"})
    rev._RESOLVED.clear()  # a new process would resolve the revision afresh
    changed = runner.invoke(app, args)
    assert changed.exit_code == 1 and "--force" in changed.output, changed.output
    assert "up to date" not in changed.output
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    revisions = [k for k in read_artifact(out, "answers").meta.upstream if k.startswith("model:")]
    assert revisions == [f"model:{model_record(f'hf:{folder}')['model_revision']}"]


def test_encode_and_encode_text_key_the_clip_weights(tmp_path, runner):
    """The CLIP model's resolved revision is an upstream key of embeddings, text embeddings and
    predictions: the same spec over changed weights is refused as other settings."""

    from safetensors.torch import load_file, save_file

    from zsar_cli.backends import MODELS_DIR
    from zsar_cli.cli.app import app

    from .test_query_lvlm_cli import fresh_frames

    folder = tmp_path / "clip"
    shutil.copytree(MODELS_DIR / "world-clip", folder)
    spec = f"openclip:local-dir:{folder}"
    assert rev.model_revision(spec).startswith("sha256:")
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\na blue square\n")
    commands = [
        ["encode", str(frames), "-m", spec, "--device", "cpu", "-o", str(tmp_path / "e.parquet")],
        ["encode-text", "-l", str(labels), "-m", spec, "--device", "cpu",
         "-o", str(tmp_path / "t.parquet")],
        ["classify", str(frames), "-l", str(labels), "-m", spec, "--device", "cpu",
         "-o", str(tmp_path / "p.parquet")],
    ]  # fmt: skip
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    weights = next(folder.glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, weights)
    rev._RESOLVED.clear()  # a new process would resolve the revision afresh
    for args in commands:
        changed = runner.invoke(app, args)
        assert changed.exit_code == 1 and "--force" in changed.output, (args[0], changed.output)
