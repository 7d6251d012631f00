"""Library tests of `zsar adapt` and of the adapter in classify/localize: each head against its
definition (GDA against scikit-learn's LDA), the artifact round trip, --shots, refusals, and the
parity tests: an adapter with weight 0 equals zero-shot exactly (classify, both poolings;
localize --method clip; anomaly scoring).

Embeddings are hand-made clusters written as artifacts of the fake encoder (`fake:clip`, whose
text embeddings are hashes of the prompt: label names it cannot read, like nonsense words)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fakes import DIM, LOGIT_SCALE
from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.errors import ArtifactError, ConfigError, InputError
from zsar_cli.stages import adapt_config, adapt_heads
from zsar_cli.stages.adapt import AdaptConfig, adapt, take_shots
from zsar_cli.stages.adapt_heads import Head, fit, normalise_rows
from zsar_cli.stages.adapter import read_adapter
from zsar_cli.stages.classify import ClassifyConfig, classify
from zsar_cli.stages.encode import PromptConfig

SPEC = "fake:clip"
CLASSES = ["a blicket", "a dax", "a wug"]
RNG_SEED = 5


def centres(seed: int = RNG_SEED, n: int = len(CLASSES)) -> np.ndarray:
    return normalise_rows(np.random.default_rng(seed).standard_normal((n, DIM)))


def clip_frames(centre: np.ndarray, rng: np.random.Generator, frames: int = 4) -> np.ndarray:
    return normalise_rows(centre + 0.1 * rng.standard_normal((frames, DIM)))


def write_clips(path, clips, spec=SPEC, scale=LOGIT_SCALE):
    """clips: {video_id: (label, F×D frames)} → an embeddings artifact of `spec`."""
    cols = {k: [] for k in ("video_id", "label", "frame_index", "timestamp", "embedding", "error")}
    for vid, (label, frames) in clips.items():
        for i, row in enumerate(frames):
            for key, value in zip(
                cols, (vid, label, i, float(i), row.astype(np.float32).tolist(), None), strict=True
            ):
                cols[key].append(value)
    extra = {"model_spec": spec, "logit_scale": scale, "embedding_dim": DIM}
    write_artifact(build_table("embeddings", cols), path, "embeddings", {"t": 1}, [], extra)
    return path


@pytest.fixture
def world(tmp_path):
    """4 support clips and 5 test clips per class, in one artifact and in the support's own."""
    rng = np.random.default_rng(11)
    c = centres()
    support, test = {}, {}
    for k, label in enumerate(CLASSES):
        for i in range(4):
            support[f"s{k}{i}"] = (label, clip_frames(c[k], rng))
        for i in range(5):
            test[f"t{k}{i}"] = (label, clip_frames(c[k], rng))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    return {
        "labels": labels,
        "support": write_clips(tmp_path / "support.parquet", support),
        "all": write_clips(tmp_path / "all.parquet", {**support, **test}),
        "test_ids": sorted(test),
        "support_ids": sorted(support),
        "tmp": tmp_path,
    }


def _cfg(**kw):
    return ClassifyConfig(device="cpu", prompts=PromptConfig(templates="none"), **kw)


def test_method_lists_agree():
    assert adapt_config.METHODS == adapt_heads.METHODS


# ---------------------------------------------------------------------------------------------
# The heads against their definitions


def test_prototypes_and_tip_adapter_hand_worked():
    clips = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    head = fit("prototypes", ["a", "a", "b"], clips, [clips[:1]] * 3, scale=10.0)
    # class a: mean of (1,0) and (0.6,0.8) = (0.8,0.4), renormalised
    np.testing.assert_allclose(head.class_vectors[0], np.array([0.8, 0.4]) / np.hypot(0.8, 0.4))
    q = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(head.logits(q), 10.0 * q @ head.class_vectors.T)
    tip = fit("tip-adapter", ["a", "a", "b"], clips, [clips[:1]] * 3, scale=10.0, beta=2.0)
    # affinities to the three cached clips: exp(-2(1 - cos)) = 1, exp(-0.8), exp(-2)
    np.testing.assert_allclose(tip.logits(q), [[1 + np.exp(-0.8), np.exp(-2.0)]])


def test_gda_is_sklearn_lda_up_to_the_covariance_normalisation():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(3)
    c = centres(1, 3)
    y = np.repeat([0, 1, 2], [6, 9, 12])  # unequal priors
    x = c[y] + 0.3 * rng.standard_normal((len(y), DIM))
    labels = [CLASSES[k] for k in y]
    gamma = 0.2
    head = fit("gda", labels, x, [row[None] for row in x], scale=1.0, shrinkage=gamma)
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=gamma).fit(x, y)
    # sklearn's shared covariance divides the within-class scatter by N, ours by N - C: our
    # linear part is sklearn's times (N - C)/N; both add log π_k.
    n, classes = len(y), 3
    q = rng.standard_normal((7, DIM))
    log_prior = np.log(np.bincount(y) / n)
    expected = (lda.decision_function(q) - log_prior) * (n - classes) / n + log_prior
    np.testing.assert_allclose(head.logits(q), expected, rtol=1e-8, atol=1e-8)
    assert head.details["shrinkage"] == gamma


def test_gda_default_shrinkage_is_ledoit_wolf_and_needs_variation():
    rng = np.random.default_rng(4)
    c = centres()
    frames = [clip_frames(c[k], rng) for k in range(3)]
    clips = normalise_rows(np.stack([f.mean(axis=0) for f in frames]))
    head = fit("gda", CLASSES, clips, frames, scale=1.0)  # one clip per class: frames vary
    assert 0 < head.details["shrinkage"] <= 1
    assert (head.logits(clips).argmax(axis=1) == [0, 1, 2]).all()
    with pytest.raises(InputError, match="no variation within a class"):
        fit("gda", CLASSES, clips, [clips[k : k + 1] for k in range(3)], scale=1.0)


# ---------------------------------------------------------------------------------------------
# The stage and its artifact


@pytest.mark.parametrize("method", adapt_heads.METHODS)
def test_adapt_round_trip(world, method):
    out = world["tmp"] / f"{method}.parquet"
    summary = adapt([world["support"]], out, AdaptConfig(method=method, weight=2.5))
    adapter = read_adapter(str(out))
    assert adapter.head.method == method and adapter.head.classes == tuple(CLASSES)
    assert adapter.model_spec == SPEC and adapter.weight == 2.5
    assert adapter.support_videos == set(world["support_ids"])
    q = normalise_rows(np.random.default_rng(0).standard_normal((5, DIM)))
    np.testing.assert_allclose(adapter.head.logits(q), summary.head.logits(q), rtol=1e-12)
    meta = read_artifact(out, "adapter").meta
    assert meta.config["method"] == method and meta.config["model"] == SPEC
    assert meta.upstream == [read_artifact(world["support"]).meta.cache_key]


def test_shots_take_the_first_k_of_each_class(world):
    out = world["tmp"] / "two.parquet"
    summary = adapt([world["support"]], out, AdaptConfig(shots=2))
    assert summary.per_class == dict.fromkeys(CLASSES, 2) and summary.skipped_shots == 6
    ids = sorted(read_adapter(str(out)).support_videos)
    assert ids == ["s00", "s01", "s10", "s11", "s20", "s21"]

    class Item:
        def __init__(self, label: str) -> None:
            self.true_label = label

    items = [Item(x) for x in "abab"]
    assert take_shots(items, 1) == items[:2] and take_shots(items, None) == items


def test_adapt_refusals(world):
    tmp = world["tmp"]
    with pytest.raises(InputError, match="no support clips"):
        adapt([], tmp / "a.parquet", AdaptConfig())
    rng = np.random.default_rng(0)
    one = write_clips(tmp / "one.parquet", {"v": ("a dax", clip_frames(centres()[0], rng))})
    with pytest.raises(InputError, match="one class only"):
        adapt([one], tmp / "a.parquet", AdaptConfig())
    unlabelled = write_clips(tmp / "u.parquet", {"v": (None, clip_frames(centres()[0], rng))})
    with pytest.raises(InputError, match="support video v has no label"):
        adapt([unlabelled], tmp / "a.parquet", AdaptConfig())
    with pytest.raises(ConfigError, match="embeddings were made with fake:clip, not --model"):
        adapt([world["support"]], tmp / "a.parquet", AdaptConfig(model="fake:other"))
    with pytest.raises(ConfigError, match="--method 'lda'"):
        adapt([world["support"]], tmp / "a.parquet", AdaptConfig(method="lda"))
    # the output may not be the input, and an unknown kind is refused by name
    with pytest.raises(InputError, match="is an input of this run"):
        adapt([world["support"]], world["support"], AdaptConfig())
    with pytest.raises(ArtifactError, match="expected a 'adapter' artifact"):
        read_adapter(str(world["support"]))


# ---------------------------------------------------------------------------------------------
# classify --adapter


@pytest.mark.parametrize("pooling", ["mean-embedding", "mean-prob"])
@pytest.mark.parametrize("method", adapt_heads.METHODS)
def test_weight_zero_is_zero_shot_exactly(world, method, pooling):
    adapter = world["tmp"] / "a.parquet"
    adapt([world["support"]], adapter, AdaptConfig(method=method))
    zero_shot = classify([world["all"]], world["labels"], _cfg(pooling=pooling))
    out = world["tmp"] / "pred.parquet"
    with_zero = classify(
        [world["all"]],
        world["labels"],
        _cfg(pooling=pooling, adapter=str(adapter), adapter_weight=0.0),
        output=out,
    )
    # the support clips are left out, and said so; every other video is scored bit for bit alike
    assert with_zero.excluded == 12 and with_zero.videos == 15
    expected = {r.video_id: r for r in zero_shot.results if r.video_id in world["test_ids"]}
    assert [r.video_id for r in with_zero.results] == sorted(expected)
    for res in with_zero.results:
        assert res.labels == expected[res.video_id].labels
        assert res.scores == expected[res.video_id].scores  # exact, not allclose
    meta = read_artifact(out, "predictions").meta
    assert meta.config["adapter_weight"] == 0.0 and meta.config["adapter"] == str(adapter)
    assert read_adapter(str(adapter)).cache_key in meta.upstream
    assert meta.extra_json("adapter")["method"] == method


def test_adapter_beats_unreadable_names(world):
    """The fake text encoder cannot read the labels; GDA at 4 shots classifies every clip."""
    adapter = world["tmp"] / "gda.parquet"
    adapt([world["support"]], adapter, AdaptConfig(method="gda"))
    zero = classify([world["all"]], world["labels"], _cfg())
    adapted = classify([world["all"]], world["labels"], _cfg(adapter=str(adapter)))
    assert adapted.accuracy == 1.0 and (zero.accuracy or 0) < 0.7
    out = world["tmp"] / "p.parquet"
    classify([world["all"]], world["labels"], _cfg(adapter=str(adapter)), output=out)
    assert read_artifact(out, "predictions").meta.config["adapter_weight"] == 1.0  # the default


def test_classify_refuses_another_model_or_unknown_labels(world):
    tmp = world["tmp"]
    adapter = tmp / "a.parquet"
    adapt([world["support"]], adapter, AdaptConfig())
    rng = np.random.default_rng(1)
    other = write_clips(
        tmp / "o.parquet", {"v": ("a dax", clip_frames(centres()[1], rng))}, "fake:b"
    )
    with pytest.raises(ConfigError, match="fitted on fake:clip embeddings, but the videos scored"):
        classify([other], world["labels"], _cfg(adapter=str(adapter)))
    more = tmp / "more.txt"
    more.write_text("\n".join([*CLASSES, "a toma"]) + "\n")
    with pytest.raises(InputError, match="no class for label"):
        classify([world["all"]], more, _cfg(adapter=str(adapter)))
    with pytest.raises(ConfigError, match="--adapter-weight needs --adapter"):
        classify([world["all"]], world["labels"], _cfg(adapter_weight=1.0))
    # spelling-insensitive: "A-Dax" is the adapter's "a dax"
    renamed = tmp / "renamed.txt"
    renamed.write_text("A_Blicket\nA-Dax\na wug\n")
    assert classify([world["all"]], renamed, _cfg(adapter=str(adapter))).videos == 15


def test_head_is_a_pure_function_of_its_parameters():
    head = Head("gda", ("a", "b"), np.eye(2), np.array([0.5, -0.5]), np.eye(2), np.array([0, 1]))
    np.testing.assert_allclose(head.logits(np.array([1.0, 2.0])), [[1.5, 1.5]])


# ---------------------------------------------------------------------------------------------
# localize --method clip and anomaly scoring with --adapter

NORMAL = "an empty gray background"


@pytest.fixture
def untrimmed(tmp_path):
    """Two 30-frame videos of background with one action each, support clips of every class
    and of the background, and text embeddings the labels cannot be read from (random)."""
    rng = np.random.default_rng(7)
    c = centres(9, 4)  # three classes + the background
    actions = {"u1": (8, 18, 0), "u2": (12, 25, 2)}
    videos = {}
    for vid, (start, end, k) in actions.items():
        frames = clip_frames(c[3], rng, 30)
        frames[start:end] = clip_frames(c[k], rng, end - start)
        videos[vid] = (None, frames)
    support = {f"s{k}{i}": (label, clip_frames(c[k], rng)) for k, label in enumerate(CLASSES)
               for i in range(3)}  # fmt: skip
    support |= {f"n{i}": (NORMAL, clip_frames(c[3], rng)) for i in range(3)}
    text = normalise_rows(np.random.default_rng(99).standard_normal((4, DIM)))

    def write_text(path, labels):
        cols = {
            "label": labels,
            "text": labels,
            "kind": ["name"] * len(labels),
            "embedding": [v.astype(np.float32).tolist() for v in text[: len(labels)]],
        }
        write_artifact(build_table("text_embeddings", cols), path, "text_embeddings", {"t": 1})
        return path

    support_path = write_clips(tmp_path / "support.parquet", support)
    adapter = tmp_path / "adapter.parquet"
    adapt([support_path], adapter, AdaptConfig(method="gda"))
    # one support clip among the videos scored: it must be left out
    emb = write_clips(tmp_path / "emb.parquet", {**videos, "s00": support["s00"]})
    truth = {vid: np.isin(np.arange(30), np.arange(s, e)) for vid, (s, e, _) in actions.items()}
    return {
        "emb": emb,
        # the actions only (localize --method clip), and with the normal prompt (anomaly)
        "actions": write_text(tmp_path / "actions.parquet", CLASSES),
        "text": write_text(tmp_path / "text.parquet", [*CLASSES, NORMAL]),
        "adapter": adapter,
        "truth": truth,
        "tmp": tmp_path,
    }


def _rows(path, kind):
    return read_artifact(path, kind).table.to_pylist()


def test_localize_clip_weight_zero_is_zero_shot_and_the_head_finds_the_label(untrimmed):
    from zsar_cli.stages.localize import run
    from zsar_cli.stages.localize_config import LocalizeConfig

    u, tmp = untrimmed, untrimmed["tmp"]
    base = LocalizeConfig(method="clip", window=3, max_gap=2)
    kept = ["u1", "u2"]
    run(base, embeddings=str(u["emb"]), text=str(u["actions"]), output=str(tmp / "zs.parquet"))
    zero = LocalizeConfig(method="clip", window=3, max_gap=2, adapter=str(u["adapter"]),
                          adapter_weight=0.0)  # fmt: skip
    res = run(
        zero, embeddings=str(u["emb"]), text=str(u["actions"]), output=str(tmp / "w0.parquet")
    )
    assert "1 support videos of --adapter left out" in res.notes
    zero_shot = [r for r in _rows(tmp / "zs.parquet", "intervals") if r["video_id"] in kept]
    assert _rows(tmp / "w0.parquet", "intervals") == zero_shot
    meta = read_artifact(tmp / "w0.parquet", "intervals").meta
    assert meta.config["adapter_weight"] == 0.0
    assert read_adapter(str(u["adapter"])).cache_key in meta.upstream
    adapted = LocalizeConfig(method="clip", window=3, max_gap=2, adapter=str(u["adapter"]))
    res = run(adapted, embeddings=str(u["emb"]), text=str(u["actions"]))
    assert res.labels_used == {"u1": [CLASSES[0]], "u2": [CLASSES[2]]}


def test_anomaly_weight_zero_is_zero_shot_and_the_head_separates_frames(untrimmed):
    from sklearn.metrics import roc_auc_score

    from zsar_cli.stages.localize import run
    from zsar_cli.stages.localize_config import LocalizeConfig

    u, tmp = untrimmed, untrimmed["tmp"]
    common = {"method": "anomaly", "normal_labels": (NORMAL,), "smooth": 1}

    def scores(name, **kw):
        out = tmp / f"{name}.parquet"
        run(LocalizeConfig(**common, **kw), embeddings=str(u["emb"]), text=str(u["text"]),
            output=str(out))  # fmt: skip
        return [r for r in _rows(out, "frame_scores") if r["video_id"] != "s00"]

    zero_shot = scores("zs")
    assert scores("w0", adapter=str(u["adapter"]), adapter_weight=0.0) == zero_shot
    adapted = scores("w1", adapter=str(u["adapter"]))
    truth = np.concatenate([u["truth"][v] for v in ("u1", "u2")])

    def auc(rows):
        return roc_auc_score(truth, [r["score"] for r in rows])

    assert auc(adapted) == 1.0 and auc(adapted) > auc(zero_shot)
    with pytest.raises(ConfigError, match="--adapter scores CLIP frame embeddings"):
        LocalizeConfig(method="zeal", adapter="a.parquet").validate()
    with pytest.raises(ConfigError, match="--adapter scores CLIP frame embeddings"):
        LocalizeConfig(method="anomaly", source="lvlm", adapter="a.parquet").validate()


def test_library_functions(world):
    import zsar_cli as zs

    out = world["tmp"] / "lib.parquet"
    summary = zs.adapt(world["support"], out, method="prototypes", shots=2)
    assert summary.videos == 6 and read_adapter(str(out)).head.method == "prototypes"
    preds = zs.classify(world["all"], labels=world["labels"], adapter=str(out), templates="none")
    # only the 2 shots per class the adapter kept are left out
    left_out = {f"s{k}{i}" for k in range(3) for i in range(2)}
    scored = set(world["test_ids"]) | set(world["support_ids"])
    assert set(preds.column("video_id").to_pylist()) == scored - left_out
    with pytest.raises(ConfigError, match="unknown option"):
        zs.adapt(world["support"], out, shot=2)
