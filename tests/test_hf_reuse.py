"""Reuse across questions (`zsar_cli.backends.hf_reuse`) scores as the model's own forward does.

Per family — the world LVLM (FastVLM, images after the question: feature cache only), tiny
random Idefics3 / SmolVLM, LLaVA-OneVision (anyres) and Qwen2.5-VL (multimodal RoPE), all images
before the question (feature cache + shared prefix) — the cached path (`reuse=True`) is compared
with `reuse=False`, which runs every prompt through `model(**processor outputs)`: p_yes to 1e-5
in float32, on batches that mix frame sizes (prefixes of different lengths) and questions of
different lengths (left padding in the plain path, right-padded suffixes in the cached one).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.backends.hf_reuse import FeatureCache, Row, images_key, plan_groups
from zsar_cli.backends.lvlm_base import choice_many, generate_many, yes_no_many
from zsar_cli.synthetic import random_object, render_frame

from .tiny_lvlms import build_tiny_idefics3, build_tiny_llava_onevision, build_tiny_qwen2_5_vl

torch.set_num_threads(2)

BUILDERS = {
    "idefics3": build_tiny_idefics3,
    "llava_onevision": build_tiny_llava_onevision,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
}
FAMILIES = ["fast_vlm", *BUILDERS]
QUESTIONS = [
    "is there a red circle in this frame ?",
    "is there any object ?",
    "This is a frame from a video of a blue square. Is a blue square entering the frame? "
    "Only answer yes or no.",
]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    if request.param == "fast_vlm":
        return load_lvlm("builtin:world-lvlm", device="cpu", dtype="float32", batch_size=3)
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    return load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=3)


def frames() -> list[np.ndarray]:
    """Three 64x48 world frames and a 40x60 one (another token count in anyres / Qwen)."""
    rng = np.random.default_rng(0)
    out = [render_frame(64, 48, [random_object(rng, 64, 48)], rng=rng) for _ in range(3)]
    out.append(render_frame(40, 60, [random_object(rng, 40, 60)], rng=rng))
    return out


def both(lvlm, fn):
    """fn() with reuse off (the model's own forward) and on (a fresh feature cache)."""
    lvlm.reuse = False
    plain = fn()
    lvlm.reuse = True
    lvlm.features.clear()
    return plain, fn()


def test_yes_no_parity_and_one_vision_run_per_frame(family):
    images = frames()
    plain, cached = both(family, lambda: yes_no_many(family, [[f] for f in images], QUESTIONS))
    assert cached.p_yes.shape == (4, 3)
    np.testing.assert_allclose(cached.p_yes, plain.p_yes, atol=1e-5)
    np.testing.assert_allclose(cached.yes_mass, plain.yes_mass, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(cached.no_mass, plain.no_mass, rtol=1e-4, atol=1e-9)
    assert family.features.vision_runs == 4  # 12 prompts, 4 frames
    # asked again (another label's questions): no vision run at all
    family.yes_no([[images[0]]], ["is there a blue square ?"])
    assert family.features.vision_runs == 4 and family.features.hits >= 1


def test_images_before_the_question_share_their_prefix(family):
    images = frames()
    family.features.clear()
    before = dict(family.stats)
    family.yes_no([[f] for f in images for _ in QUESTIONS], [q for _ in images for q in QUESTIONS])
    shared = family.stats["shared_rows"] - before["shared_rows"]
    if family.model_type == "fast_vlm":
        # The world LVLM's template puts the image after the question: nothing causal to share.
        assert shared == 0
    else:
        assert shared == 12
        assert family.stats["prefix_passes"] - before["prefix_passes"] == 4


def test_batch_of_one_equals_batched(family):
    """Left padding (plain) and right-padded suffixes (cached) give one-by-one scores."""
    images = frames()
    prompts = [q for _ in images for q in QUESTIONS]
    per_prompt = [[f] for f in images for _ in QUESTIONS]
    batched = family.yes_no(per_prompt, prompts).p_yes
    family.batch_size, size = 1, family.batch_size
    try:
        family.features.clear()
        alone = np.array(
            [family.yes_no([im], [p]).p_yes[0] for im, p in zip(per_prompt, prompts, strict=True)]
        )
    finally:
        family.batch_size = size
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_clip_prompts_parity(family):
    """Several frames in one prompt (clip level): the image set is the cache key."""
    images = frames()
    clips = [images[:2], images[1:3]]
    plain, cached = both(family, lambda: yes_no_many(family, clips, QUESTIONS[:2]))
    np.testing.assert_allclose(cached.p_yes, plain.p_yes, atol=1e-5)
    assert family.features.vision_runs == 2


def test_choice_parity(family):
    images = frames()[:2]
    options = ["a red circle", "a blue square", "a green triangle"]
    plain, cached = both(
        family,
        lambda: choice_many(family, [[f] for f in images], ["which of these shown ?"], options),
    )
    np.testing.assert_allclose(cached, plain, atol=1e-5)
    np.testing.assert_allclose(cached.sum(-1), 1.0, atol=1e-9)


def test_generate_parity(family):
    """Greedy decoding on the shared prefix's cache writes what transformers' generate writes."""
    images = frames()
    plain, cached = both(
        family, lambda: generate_many(family, [[f] for f in images], QUESTIONS[:2], 5)
    )
    assert cached == plain


def test_embed_inputs_parity(family):
    """Self-ReS reads `embed_inputs`: cached features and positions equal the captured ones."""
    images = frames()
    inputs = family.build_inputs([images[:2], images[2:]], QUESTIONS[:2])
    captured, cached = both(family, lambda: family.embed_inputs(inputs))
    torch.testing.assert_close(cached.inputs_embeds, captured.inputs_embeds, atol=1e-6, rtol=1e-5)
    if captured.position_ids is not None:
        real = inputs.attention_mask.bool()
        assert torch.equal(cached.position_ids[..., real], captured.position_ids[..., real])
    out_plain = family.run_language_model(captured)
    out_cached = family.run_language_model(cached)
    torch.testing.assert_close(out_cached.logits, out_plain.logits, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# The pieces


def test_feature_cache_is_bounded_lru():
    cache = FeatureCache(max_bytes=3 * 4 * 10)  # room for three 10-float entries
    for k in (b"a", b"b", b"c"):
        cache.put(k, torch.zeros(10))
    assert cache.get(b"a") is not None  # a is now the most recent
    cache.put(b"d", torch.zeros(10))
    assert cache.get(b"b") is None and cache.get(b"a") is not None and cache.bytes == 120
    cache.put(b"huge", torch.zeros(100))  # larger than the whole cache: not kept
    assert cache.get(b"huge") is None and cache.vision_runs == 5


def test_images_key_is_content_and_order():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert images_key([a]) == images_key([a.copy()])
    assert images_key([a]) != images_key([b])
    assert images_key([a, b]) != images_key([b, a])
    assert images_key([a]) != images_key([a.reshape(2, 8, 3)])


def _row(ids, last_image, key=b"k"):
    ids = torch.tensor(ids)
    return Row(torch.zeros(len(ids), 2), torch.arange(len(ids)), ids, last_image, key)


def test_plan_groups():
    # image tokens (index 1) before the question: the common prefix [0, 1, 2] is shared
    rows = [_row([0, 1, 2, 5, 6], 1), _row([0, 1, 2, 7], 1), _row([0, 1, 2, 5, 9, 9], 1)]
    groups = plan_groups(rows)
    assert [(g.rows, g.prefix) for g in groups] == [([0, 1, 2], 3)]
    # the image after the question: prompts differ before it, nothing is shared
    rows = [_row([0, 5, 1, 3], 2), _row([0, 6, 1, 3], 2)]
    assert [(g.rows, g.prefix) for g in plan_groups(rows)] == [([0, 1], 0)]
    # identical prompts keep one token of their own; other images never share
    rows = [_row([0, 1, 2], 1), _row([0, 1, 2], 1), _row([0, 1, 2], 1, key=b"other")]
    assert [(g.rows, g.prefix) for g in plan_groups(rows)] == [([0, 1], 2), ([2], 0)]
