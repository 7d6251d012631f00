"""Self-ReS library: token scores vs an independent forward pass, budgets and temporal order,
parity of the final pass with the plain frame path, bad inputs, and the world experiment (an
object present briefly in one segment of a long clip) scored with the score stage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from zsar_cli.errors import ConfigError, ModelError  # noqa: E402
from zsar_cli.stages.select_tokens import (  # noqa: E402
    FrameItem,
    SelectionError,
    check_family,
    reflection_paths,
    score_path,
    select_video_tokens,
    split_budget,
    tokens_table,
    top_tokens,
    uncapped_frames,
)
from zsar_cli.stages.select_tokens_config import SelectTokensConfig, parse_layers  # noqa: E402
from zsar_cli.stages.self_res import (  # noqa: E402
    answer_choice,
    answer_yes_no,
    kept_from_rows,
    kept_from_selection,
)
from zsar_cli.synthetic import object_patch_mask, random_object, render_frame  # noqa: E402

W, H = 160, 120
QUESTION = "Is there {label} in this frame?"


@pytest.fixture(scope="module")
def lvlm():
    from zsar_cli.backends import load_lvlm

    torch.set_num_threads(2)
    return load_lvlm("builtin:world-lvlm", device="cpu", dtype="float32", max_frames=4)


def config(**kw) -> SelectTokensConfig:
    base = {"model": "builtin:world-lvlm", "question": "Is there any object in this frame?"}
    return SelectTokensConfig(**{**base, **kw}).validated()


def clip_frames(rng, count, per_segment, obj=None, present=()):
    return [
        FrameItem(
            i,
            i / 8.0,
            i // per_segment,
            render_frame(W, H, [obj] if obj is not None and i in present else [], rng=rng),
        )
        for i in range(count)
    ]


# ---------------------------------------------------------------------------------------------
# Scores against an independent computation


def test_attention_scores_equal_the_full_models_attention(lvlm):
    rng = np.random.default_rng(0)
    obj = random_object(rng, W, H, max_speed=0.0)
    images = [f.image for f in clip_frames(rng, 3, 3, obj, {1})]
    prompt = f"Is there {obj.label} in this frame?"
    result = score_path(lvlm, images, prompt, "attention", (0, -1))
    # Independent: the whole multimodal model forward (pixels in), eager attention weights.
    with uncapped_frames(lvlm):
        inputs = lvlm.build_inputs([images], [prompt])
    previous = lvlm.model.config._attn_implementation
    lvlm.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = lvlm.model(**inputs.tensors, output_attentions=True, use_cache=False)
    finally:
        lvlm.model.set_attn_implementation(previous)
    pos = inputs.image_token_positions()[0]
    layers = [0, len(out.attentions) - 1]
    want = torch.stack([out.attentions[i][0, :, -1, pos].mean(0) for i in layers]).mean(0)
    np.testing.assert_allclose(result.scores.ravel(), want.numpy(), atol=1e-6)
    assert result.scores.shape == (3, len(pos) // 3)
    # The selection pass leaves the model on its own attention implementation.
    assert lvlm.model.config._attn_implementation == previous


def test_similarity_scores_equal_cosine_of_hidden_states(lvlm):
    rng = np.random.default_rng(1)
    images = [f.image for f in clip_frames(rng, 2, 2)]
    prompt = "Is there any object in this frame?"
    result = score_path(lvlm, images, prompt, "similarity", ())
    with uncapped_frames(lvlm):
        inputs = lvlm.build_inputs([images], [prompt])
    with torch.inference_mode():
        out = lvlm.model(**inputs.tensors, output_hidden_states=True, use_cache=False)
    pos = inputs.image_token_positions()[0]
    per_layer = []
    for hidden in out.hidden_states[1:]:
        h = hidden[0].double()
        v = h[pos] / h[pos].norm(dim=-1, keepdim=True)
        last = h[-1] / h[-1].norm()
        per_layer.append(v @ last)
    want = torch.stack(per_layer).mean(0).numpy()
    np.testing.assert_allclose(result.scores.ravel(), want, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Budgets, order, artifact rows


def test_budget_split_evenly_and_kept_in_temporal_order(lvlm):
    rng = np.random.default_rng(2)
    frames = clip_frames(rng, 9, 3)
    cfg = config(budget=10, scorer="similarity")
    sel = select_video_tokens(lvlm, "v", frames, cfg.question, cfg)
    assert len(sel.token_index) == 10
    per_segment = [sel.segment.count(s) for s in range(3)]
    assert per_segment == [4, 3, 3]
    order = list(zip(sel.frame_index, sel.token_index, strict=True))
    assert order == sorted(order)
    # Each path keeps exactly its own top tokens.
    path = score_path(lvlm, [f.image for f in frames[:3]], cfg.question, "similarity", ())
    best = top_tokens(path.scores, 4)
    n = path.tokens_per_frame
    assert [(int(b) // n, int(b) % n) for b in best] == order[:4]
    assert sel.score[:4] == pytest.approx([float(path.scores.ravel()[b]) for b in best])


def test_default_budget_is_baseline_frames_tokens(lvlm):
    rng = np.random.default_rng(3)
    frames = clip_frames(rng, 8, 4)
    sel = select_video_tokens(lvlm, "v", frames, "Is there any object?", config(baseline_frames=3))
    assert len(sel.token_index) == 3 * sel.tokens_per_frame
    assert sel.available == 8 * sel.tokens_per_frame


def test_split_budget_and_top_tokens_golden():
    assert split_budget(7, [10, 10, 10]) == [3, 2, 2]
    with pytest.raises(SelectionError, match="path 1 would keep 3 tokens but has only 2"):
        split_budget(6, [10, 2])
    scores = np.array([[0.1, 0.9, 0.2], [0.9, 0.0, 0.5]])
    assert top_tokens(scores, 3).tolist() == [1, 3, 5]  # ties: the earlier token first


def test_tokens_table_round_trip_float16(lvlm):
    rng = np.random.default_rng(4)
    frames = clip_frames(rng, 4, 2)
    cfg = config(budget=6)
    sel = select_video_tokens(lvlm, "v", frames, cfg.question, cfg)
    table = tokens_table([sel], [("bad", None, "broken video")])
    assert table.num_rows == 7
    assert table.column("error").to_pylist()[-1] == "broken video"
    back = kept_from_rows(table.slice(0, 6))
    ref = kept_from_selection(sel)
    assert [k.frame_index for k in back] == [k.frame_index for k in ref]
    for a, b in zip(back, ref, strict=True):
        assert a.token_index.tolist() == b.token_index.tolist()
        np.testing.assert_allclose(a.embeddings.numpy(), b.embeddings.numpy(), rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Parity: every token kept = the plain frame path


@pytest.mark.parametrize("scorer", ["attention", "similarity"])
def test_all_tokens_kept_gives_the_plain_frame_paths_p_yes(lvlm, scorer):
    rng = np.random.default_rng(5)
    obj = random_object(rng, W, H, max_speed=0.0)
    frames = clip_frames(rng, 6, 3, obj, {4})
    question = f"Is there {obj.label} in this frame?"
    per_frame = select_video_tokens(lvlm, "v", frames[:1], question, config(budget=1, segments=1))
    everything = 6 * per_frame.tokens_per_frame
    sel = select_video_tokens(lvlm, "v", frames, question, config(budget=everything, scorer=scorer))
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([[f.image for f in frames]], [question])
        options = ["a red circle", obj.label, "a blue square"]
        plain_choice = lvlm.choice([f.image for f in frames], "Which of these is shown?", options)
    p_yes, yes, _no = answer_yes_no(lvlm, kept_from_selection(sel), W, H, question)
    assert abs(p_yes - float(plain.p_yes[0])) < 1e-4
    assert yes == pytest.approx(float(plain.yes_mass[0]), rel=1e-3)
    # Through the artifact (float16 storage) as well.
    stored = kept_from_rows(tokens_table([sel]))
    assert abs(answer_yes_no(lvlm, stored, W, H, question)[0] - float(plain.p_yes[0])) < 1e-4
    probs = answer_choice(lvlm, kept_from_selection(sel), W, H, "Which of these is shown?", options)
    np.testing.assert_allclose(probs, plain_choice, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_budget_larger_than_tokens_available(lvlm):
    frames = clip_frames(np.random.default_rng(6), 4, 2)
    with pytest.raises(SelectionError, match=r"--budget asks for 1000 tokens but only \d+ visual"):
        select_video_tokens(lvlm, "v1", frames, "Is there any object?", config(budget=1000))
    with pytest.raises(SelectionError, match=r"default budget .16 frames"):
        select_video_tokens(lvlm, "v1", frames, "Is there any object?", config())


def test_segments_not_dividing_the_frames_and_frames_without_segments():
    frames = [FrameItem(i, float(i), -1, np.zeros((4, 4, 3), np.uint8)) for i in range(10)]
    with pytest.raises(SelectionError, match="--segments 3 does not divide its 10 frames"):
        reflection_paths("clip7", frames, 3)
    with pytest.raises(SelectionError, match="frames carry no segment"):
        reflection_paths("clip7", frames, None)
    assert [len(p) for p in reflection_paths("clip7", frames, 5)] == [2] * 5


def test_model_family_without_hooks_is_refused(lvlm):
    class PlainBackend:
        spec = "fake:plain"

        def yes_no(self, images, prompts):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ModelError, match="fake:plain: this LVLM backend has no token-selection"):
        check_family(PlainBackend())
    qwen_like = dataclasses.make_dataclass(
        "QwenLike",
        [("spec", str), ("model_type", str)],
        namespace={
            "build_inputs": lambda s: None,
            "embed_inputs": lambda s: None,
            "run_language_model": lambda s: None,
        },
    )("hf:zai-org/GLM-4.1V-9B-Thinking", "glm4v")
    with pytest.raises(ModelError, match=r"glm4v computes multimodal \(3-D\) RoPE positions"):
        check_family(qwen_like)
    check_family(lvlm)  # the Idefics3 world model has every hook


def test_config_errors():
    with pytest.raises(ConfigError, match="--scorer 'gaze'"):
        config(scorer="gaze")
    with pytest.raises(ConfigError, match="--labels needs a --question containing"):
        config(labels_file="labels.txt")
    with pytest.raises(ConfigError, match="--layers 'x'"):
        parse_layers("x")
    assert parse_layers("all") == () and parse_layers("0,-1") == (0, -1)


def test_layer_out_of_range(lvlm):
    frames = clip_frames(np.random.default_rng(7), 2, 2)
    n = lvlm.model.config.text_config.num_hidden_layers
    with pytest.raises(ConfigError, match=f"--layers 9: the model has {n} decoder layers"):
        score_path(lvlm, [f.image for f in frames], "Is there any object?", "attention", (9,))


# ---------------------------------------------------------------------------------------------
# The world experiment: an object present briefly in one segment of a long clip

SEGMENTS, PER_SEGMENT = 4, 16  # T = 64 densely sampled frames
LINEAR = list(range(2, SEGMENTS * PER_SEGMENT, 4))  # 16 linearly sampled frames (midpoints)


def brief_object_clip(rng, present: bool):
    """64 frames; the object (if any) is on 2 consecutive frames of one segment, both between
    two linear samples, so linear 16-frame sampling never sees it."""
    obj = random_object(rng, W, H, max_speed=0.0)
    segment = int(rng.integers(SEGMENTS))
    first = 4 * int(rng.integers(4 * segment, 4 * segment + 3)) + 3
    shown = {first, first + 1} if present else set()
    background = int(rng.integers(100, 161))
    frames = [
        FrameItem(
            i,
            i / 8.0,
            i // PER_SEGMENT,
            render_frame(W, H, [obj] if i in shown else [], background=background, rng=rng),
        )
        for i in range(SEGMENTS * PER_SEGMENT)
    ]
    assert not shown & set(LINEAR)
    return frames, obj, segment, shown


def presence_predictions(rows):
    """(video_id, p_yes, truth) → a predictions table over the labels yes/no for `score`."""
    from zsar_cli.artifacts import build_table

    cols = {k: [] for k in ("video_id", "label", "score", "rank", "true_label")}
    for video_id, p_yes, truth in rows:
        ranked = sorted([("yes", p_yes), ("no", 1 - p_yes)], key=lambda x: -x[1])
        for rank, (label, score) in enumerate(ranked, 1):
            for key, value in zip(cols, (video_id, label, score, rank, truth), strict=True):
                cols[key].append(value)
    return build_table("predictions", cols)


# 8 kept tokens per clip = 2 per path: a small object covers a single cell of the world LVLM's
# 4x4 token grid, i.e. 2 object tokens on its 2 frames; a larger per-path budget would cap the
# precision by geometry (4 kept, 2 on the object: 0.5 at best) rather than measure selection.
def world_experiment(lvlm, scorer, positives=30, negatives=10, budget=8, seed=11):
    from zsar_cli.stages.score import score_classification

    rng = np.random.default_rng(seed)
    grid = None
    on_object, uniform, selfres_rows, linear_rows = [], [], [], []
    for v in range(positives + negatives):
        present = v < positives
        frames, obj, segment, shown = brief_object_clip(rng, present)
        question = QUESTION.format(label=obj.label)
        cfg = config(question=question, budget=budget, scorer=scorer)
        sel = select_video_tokens(lvlm, f"v{v}", frames, question, cfg)
        if grid is None:
            side = round(sel.tokens_per_frame**0.5)
            assert side * side == sel.tokens_per_frame  # Idefics3: a square grid per frame
            grid = (side, side)
        p_self = answer_yes_no(lvlm, kept_from_selection(sel), W, H, question)[0]
        with uncapped_frames(lvlm):
            p_lin = float(lvlm.yes_no([[frames[i].image for i in LINEAR]], [question]).p_yes[0])
        truth = "yes" if present else "no"
        selfres_rows.append((f"v{v}", p_self, truth))
        linear_rows.append((f"v{v}", p_lin, truth))
        if present:
            # Idefics3 stretches a frame to the square encoder input; token k covers cell
            # (k // side, k % side) of the frame (pixel shuffle keeps row-major order).
            cells = object_patch_mask(obj, 0.0, W, H, grid).ravel()
            kept = [i for i, s in enumerate(sel.segment) if s == segment]
            hits = [sel.frame_index[i] in shown and cells[sel.token_index[i]] for i in kept]
            on_object.append(float(np.mean(hits)))
            uniform.append(len(shown) * cells.sum() / (PER_SEGMENT * sel.tokens_per_frame))
    self_report = score_classification(presence_predictions(selfres_rows))
    linear_report = score_classification(presence_predictions(linear_rows))
    return {
        "precision": float(np.mean(on_object)),
        "uniform": float(np.mean(uniform)),
        "selfres_top1": self_report.accuracy.top1,
        "linear_top1": linear_report.accuracy.top1,
        "selfres_recall_yes": float(np.mean([p > 0.5 for _, p, t in selfres_rows if t == "yes"])),
        "linear_recall_yes": float(np.mean([p > 0.5 for _, p, t in linear_rows if t == "yes"])),
        "selfres_correct_no": float(np.mean([p < 0.5 for _, p, t in selfres_rows if t == "no"])),
    }


def world_model_is_trained() -> bool:
    """The shipped world LVLM records its training steps; a placeholder build has a handful."""
    import json

    from zsar_cli.backends import MODELS_DIR

    build = MODELS_DIR / "world-lvlm" / "BUILD.json"
    return build.is_file() and json.loads(build.read_text()).get("steps", 0) >= 100


@pytest.mark.slow  # 40 clips × 64 frames per scorer: ~1 min each on 2 cores
@pytest.mark.parametrize(
    "scorer",
    [
        "attention",
        pytest.param(
            "similarity",
            # strict: a model that meets the bars again must drop this mark
            marks=pytest.mark.xfail(
                strict=True,
                reason="cosine similarity to the last token is not something the world LVLM is "
                "trained for: with the previous build it kept object tokens (precision 0.67, "
                "top-1 0.73); since the choice-heavy retraining object tokens are the least "
                "similar (precision 0.08, recall 0); the attention scorer is unaffected (0.98)",
            ),
        ),
    ],
)
def test_world_brief_object_selfres_finds_it_where_linear_misses(lvlm, scorer):
    if not world_model_is_trained():
        # A missing or placeholder world model is a broken checkout, never a reason to skip.
        pytest.fail(
            "builtin:world-lvlm is missing or an untrained placeholder (BUILD.json steps < 100); "
            "restore zsar_cli/models/world-lvlm or rebuild it with scripts/build_world_lvlm.sh"
        )
    result = world_experiment(lvlm, scorer)
    print(scorer, result)
    # 16 linear frames never show the object; no scorer makes Self-ReS say yes to empty clips.
    assert result["linear_recall_yes"] <= 0.2
    assert result["selfres_correct_no"] >= 0.8
    if scorer == "attention":  # the default scorer (the paper's) carries the bars
        # Kept tokens in the object's path lie on the object (vs its area share, uniform picks).
        assert result["precision"] >= 0.8 > 4 * result["uniform"]
        # Self-ReS answers yes where linear sampling misses (accuracy from the score stage).
        assert result["selfres_recall_yes"] >= 0.8
        assert result["selfres_top1"] >= 0.8 > result["linear_top1"] + 0.3
    else:  # the previous world model: precision 0.67, recall 0.63, top-1 0.73
        assert result["precision"] >= 10 * result["uniform"]
        assert result["selfres_recall_yes"] >= 0.5 > result["linear_recall_yes"]
