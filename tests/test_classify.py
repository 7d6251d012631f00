"""Library tests of the `classify` stage: scoring against an independent computation, the three
input kinds (videos, frames, embeddings) agreeing, error rows, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_encode import (
    TINY_ARCH,
    _decoded,
    direct_open_clip,
    make_tiny_clip,
    world_frames,
    write_frames,
)
from zsar_cli import synthetic
from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.errors import ArtifactError, ConfigError, InputError
from zsar_cli.stages.classify import (
    ClassifyConfig,
    classify,
    softmax,
    video_probabilities,
)
from zsar_cli.stages.encode import EncodeConfig, PromptConfig
from zsar_cli.stages.encode import run as encode_run

LABELS = list(synthetic.LABELS[:4])


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip-classify"), seed=3)


@pytest.fixture
def labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


def _config(tiny_clip, **kw):
    return ClassifyConfig(
        model=f"openclip:{TINY_ARCH}@{tiny_clip}",
        device="cpu",
        prompts=PromptConfig(templates="none"),
        **kw,
    )


def test_video_probabilities_hand_worked():
    weights = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    frames = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    mean = np.array([0.8, 0.4]) / np.linalg.norm([0.8, 0.4])
    got = video_probabilities(frames, weights, 10.0, "mean-embedding")
    np.testing.assert_allclose(got, softmax(10.0 * mean), rtol=1e-5)
    per_frame = (softmax(np.array([10.0, 0.0])) + softmax(np.array([6.0, 8.0]))) / 2
    np.testing.assert_allclose(
        video_probabilities(frames, weights, 10.0, "mean-prob"), per_frame, rtol=1e-5
    )
    with pytest.raises(ConfigError, match="--pooling 'max'"):
        video_probabilities(frames, weights, 10.0, "max")


@pytest.mark.parametrize("pooling", ["mean-embedding", "mean-prob"])
def test_classify_embeddings_artifact_matches_direct_open_clip(
    tmp_path, tiny_clip, labels_file, pooling
):
    import open_clip

    frames = [f for _, f in world_frames(21, labels=LABELS)]
    src = write_frames(
        tmp_path / "frames.parquet",
        {"v1": frames[:2], "v2": frames[2:]},
        errors={"v3": "decode failed"},
        labels={"v1": LABELS[0], "v2": LABELS[2], "v3": LABELS[1]},
    )
    cfg = _config(tiny_clip, pooling=pooling)
    emb = tmp_path / "emb.parquet"
    encode_run(src, emb, EncodeConfig(model=cfg.model, device="cpu", dtype="float32"))
    out = tmp_path / "pred.parquet"
    summary = classify([str(emb)], labels_file, cfg, output=out)

    # Independent reference: open_clip's own model, transform and tokenizer.
    img, txt = direct_open_clip(tiny_clip, _decoded(src), LABELS)
    model = open_clip.create_model(f"local-dir:{tiny_clip.parent}", load_weights=False)
    open_clip.load_checkpoint(model, str(tiny_clip))
    scale = float(model.logit_scale.detach().exp())
    expected = {}
    for vid, rows in (("v1", img[:2]), ("v2", img[2:])):
        if pooling == "mean-embedding":
            v = rows.mean(0) / np.linalg.norm(rows.mean(0))
            expected[vid] = softmax(scale * txt @ v)
        else:
            expected[vid] = softmax(scale * rows @ txt.T).mean(0)

    table = read_artifact(out, "predictions").table.to_pydict()
    assert summary.videos == 3 and summary.failed == 1
    for vid in ("v1", "v2"):
        idx = [i for i, v in enumerate(table["video_id"]) if v == vid]
        assert [table["rank"][i] for i in idx] == [1, 2, 3, 4]
        got = {table["label"][i]: table["score"][i] for i in idx}
        np.testing.assert_allclose([got[lab] for lab in LABELS], expected[vid], atol=1e-5)
        assert [table["score"][i] for i in idx] == sorted(got.values(), reverse=True)
        assert {table["true_label"][i] for i in idx} == {LABELS[0] if vid == "v1" else LABELS[2]}
    err = table["video_id"].index("v3")
    assert table["error"][err] == "decode failed" and table["label"][err] is None
    assert table["true_label"][err] == LABELS[1]
    meta = read_artifact(out).meta
    assert meta.upstream[0] == read_artifact(emb).meta.cache_key
    assert meta.extra_json("labels") == LABELS


def test_frames_artifact_and_embeddings_artifact_agree(tmp_path, tiny_clip, labels_file):
    frames = [f for _, f in world_frames(22, labels=LABELS)]
    src = write_frames(tmp_path / "frames.parquet", {"a": frames[:3], "b": frames[3:]})
    cfg = _config(tiny_clip, batch_size=2)
    emb = tmp_path / "emb.parquet"
    encode_run(src, emb, EncodeConfig(model=cfg.model, device="cpu", dtype="float32"))
    by_frames = classify([str(src)], labels_file, cfg).results
    by_emb = classify([str(emb)], labels_file, cfg).results
    for x, y in zip(by_frames, by_emb, strict=True):
        assert x.video_id == y.video_id and x.labels == y.labels and x.frames == y.frames
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-5)


def test_videos_in_process_equal_the_staged_pipeline(tmp_path, tiny_clip, labels_file):
    """classify(videos) == extract-frames (png) → encode (float32) → classify(embeddings)."""
    from zsar_cli.stages.extract_frames import ExtractConfig
    from zsar_cli.stages.extract_frames import run as extract_run

    world = synthetic.generate_world(
        tmp_path / "world",
        synthetic.SynthConfig(
            trimmed=3,
            untrimmed=0,
            anomaly=0,
            seed=5,
            width=160,
            height=120,
            fps=10,
            trimmed_duration=(2.0, 2.0),
        ),
    )
    listing = tmp_path / "world" / "trimmed" / "list.csv"
    broken = tmp_path / "world" / "trimmed" / "broken.mp4"
    broken.write_bytes(b"not a video")
    with listing.open("a") as f:
        f.write("broken.mp4,a red circle\n")
    cfg = _config(tiny_clip, num_frames=4, batch_size=5)
    summary = classify([str(listing)], labels_file, cfg)
    assert summary.videos == len(world.videos) + 1 and summary.failed == 1
    failed = [r for r in summary.results if r.error is not None]
    assert failed[0].video_id == "broken" and failed[0].true_label == "a red circle"

    frames = tmp_path / "frames.parquet"
    extract_run([str(listing)], frames, ExtractConfig(num_frames=4, image_format="png"))
    emb = tmp_path / "emb.parquet"
    encode_run(frames, emb, EncodeConfig(model=cfg.model, device="cpu", dtype="float32"))
    staged = {r.video_id: r for r in classify([str(emb)], labels_file, cfg).results}
    for res in summary.results:
        other = staged[res.video_id]
        assert (res.error is None) == (other.error is None)
        if res.error is None:
            assert res.frames == other.frames == 4
            assert res.labels == other.labels
            np.testing.assert_allclose(res.scores, other.scores, atol=1e-5)
            assert res.true_label is not None and res.true_label == other.true_label


def test_bad_inputs(tmp_path, tiny_clip, labels_file):
    cfg = _config(tiny_clip)
    pred = tmp_path / "pred.parquet"
    write_artifact(
        build_table(
            "predictions", {"video_id": ["v"], "label": ["x"], "score": [1.0], "rank": [1]}
        ),
        pred,
        "predictions",
        {},
    )
    with pytest.raises(
        ArtifactError, match=r"expected a 'embeddings' or 'frames' artifact, found 'predictions'"
    ):
        classify([str(pred)], labels_file, cfg)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="holds no labels"):
        classify(["whatever.mp4"], empty, cfg)
    with pytest.raises(InputError, match="no inputs"):
        classify([], labels_file, cfg)
    with pytest.raises(ConfigError, match="--num-frames"):
        classify(["x.mp4"], labels_file, _config(tiny_clip, num_frames=0))
    # Image and text embeddings must come from one model.
    frames = write_frames(tmp_path / "f.parquet", {"v": [world_frames(1, labels=LABELS[:1])[0][1]]})
    emb = tmp_path / "emb.parquet"
    encode_run(frames, emb, EncodeConfig(model=cfg.model, device="cpu"))
    other = make_tiny_clip(tmp_path / "other", seed=9)
    with pytest.raises(ConfigError, match="embeddings were made with"):
        classify([str(emb)], labels_file, _config(other))
