"""The transformers LVLM backend: logit confidences, spellings, batching, families, hooks, errors.

Real code paths only: the shipped world LVLM (FastVLM), a tiny random-init Idefics3 (the default
SmolVLM family) and a tiny random-init LLaVA-OneVision, each built by tests/tiny_lvlms.py and
saved with its processor, all loaded through `hf:/dir`. Reuse of image features and prefixes
across questions is tested against the models' own forward in tests/test_hf_reuse.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.backends.hf_lvlm import (
    NO_SPELLINGS,
    YES_SPELLINGS,
    cap_frames,
    cap_pixels,
    chat_prompt,
    format_choice_prompt,
    load_hf_lvlm,
)
from zsar_cli.errors import ModelError
from zsar_cli.synthetic import LABELS, WorldObject, random_object, render_frame

from .tiny_lvlms import build_tiny_idefics3, build_tiny_llava_onevision

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def world():
    return load_lvlm("builtin:world-lvlm", device="cpu", batch_size=16)


def _frames(seed: int, n: int, size=(160, 120)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        obj = random_object(rng, *size)
        out.append((render_frame(*size, [obj], rng=rng, noise_sigma=6.0), obj.label))
    return out


def _vocab_ids(tokenizer, spellings) -> set[int]:
    """Independent scan of the whole vocabulary: ids whose decoded text is one of `spellings`."""
    return {i for i in range(len(tokenizer)) if tokenizer.decode([i]) in spellings}


def _hand_p_yes(lvlm, image, text) -> tuple[float, float, float]:
    """p_yes computed directly with the processor and the model (no backend code)."""
    proc, model = lvlm.processor, lvlm.model
    prompt = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    inputs = proc(text=[prompt], images=[[image]], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].double()
    probs = torch.softmax(logits, -1)
    yes = float(probs[sorted(_vocab_ids(lvlm.tokenizer, YES_SPELLINGS))].sum())
    no = float(probs[sorted(_vocab_ids(lvlm.tokenizer, NO_SPELLINGS))].sum())
    return yes / (yes + no), yes, no


def test_all_yes_no_spellings_found(world):
    tok = world.tokenizer
    assert set(world.yes_ids.values()) == _vocab_ids(tok, YES_SPELLINGS)
    assert set(world.no_ids.values()) == _vocab_ids(tok, NO_SPELLINGS)
    # the world tokenizer was built so that every spelling is one token
    assert set(world.yes_ids) == set(YES_SPELLINGS)
    assert set(world.no_ids) == set(NO_SPELLINGS)
    assert len(set(world.yes_ids.values())) == 6


def test_p_yes_equals_hand_computation(world):
    ((frame, label),) = _frames(1, 1)
    text = f"Is there {label} in this frame?"
    scores = world.yes_no([[frame]], [text])
    p, yes, no = _hand_p_yes(world, frame, text)
    assert scores.p_yes[0] == pytest.approx(p, abs=1e-6)
    assert scores.yes_mass[0] == pytest.approx(yes, rel=1e-5)
    assert scores.no_mass[0] == pytest.approx(no, rel=1e-5)


def test_batched_left_padding_equals_one_by_one(world):
    frames = _frames(2, 3)
    prompts = [
        "Is there a red circle in this frame?",
        "This is a frame from a video of a blue square. Is a blue square entering the "
        "frame? Only answer yes or no.",
        "Is there any object in this frame?",
    ]
    images = [[f] for f, _ in frames]
    batched = world.yes_no(images, prompts)
    single = [world.yes_no([im], [p]).p_yes[0] for im, p in zip(images, prompts, strict=True)]
    np.testing.assert_allclose(batched.p_yes, single, atol=1e-5)


def test_world_lvlm_separates_frames_with_objects_from_empty():
    """'Is there any object in this frame?' on fresh 320x240 world frames (anomaly question)."""
    from sklearn.metrics import roc_auc_score

    lvlm = load_lvlm("builtin:world-lvlm", device="cpu", batch_size=32)
    rng = np.random.default_rng(4321)
    images, truth = [], []
    for i in range(48):
        objects = [random_object(rng, 320, 240)] if i % 2 else []
        frame = render_frame(
            320,
            240,
            objects,
            background=int(rng.integers(90, 171)),
            noise_sigma=float(rng.uniform(0, 12)),
            rng=rng,
        )
        images.append([frame])
        truth.append(bool(objects))
    scores = lvlm.yes_no(images, ["Is there any object in this frame?"] * len(images))
    assert roc_auc_score(truth, scores.p_yes) >= 0.95


def test_world_lvlm_separates_present_from_absent():
    from sklearn.metrics import roc_auc_score

    lvlm = load_lvlm("builtin:world-lvlm", device="cpu", batch_size=32)
    rng = np.random.default_rng(1234)  # fresh frames, not the build script's seeds
    images, prompts, truth = [], [], []
    for i in range(96):
        obj = random_object(rng, 320, 240)
        frame = render_frame(
            320,
            240,
            [obj],
            background=int(rng.integers(90, 171)),
            noise_sigma=float(rng.uniform(0, 12)),
            rng=rng,
        )
        asked = obj.label if i % 2 else LABELS[int(rng.integers(len(LABELS)))]
        images.append([frame])
        prompts.append(f"Is there {asked} in this frame?" if i % 3 else f"Can you see {asked}?")
        truth.append(asked == obj.label)
    # an empty frame counts as absent for every label
    empty = render_frame(320, 240, [], rng=rng)
    images += [[empty]] * 4
    prompts += [f"Is there {lab} in this frame?" for lab in LABELS[:4]]
    truth += [False] * 4
    scores = lvlm.yes_no(images, prompts)
    assert roc_auc_score(truth, scores.p_yes) >= 0.95


def test_world_lvlm_answers_zeal_start_end_questions_from_one_frame():
    """The world's descriptions ask ZEAL's start question about the white-rim phase and the end
    question about the outline phase (`zsar synth --phase-seconds`); inside ZEAL's frame prompt
    the world LVLM says yes only for the asked label in the asked phase."""
    from sklearn.metrics import roc_auc_score

    from zsar_cli.stages.query_lvlm_config import ZEAL_FRAME_PROMPT
    from zsar_cli.synthetic import world_descriptions

    questions = {d["label"]: d for d in world_descriptions()}
    lvlm = load_lvlm("builtin:world-lvlm", device="cpu", batch_size=32)
    rng = np.random.default_rng(4321)
    images, prompts, truth = [], [], []
    for i in range(96):
        obj = random_object(rng, 320, 240)
        style = ("plain", "rim", "outline")[i % 3]
        which = ("start", "end")[(i // 3) % 2]
        frame = render_frame(320, 240, [obj], rng=rng, styles=[style])
        images.append([frame])
        question = questions[obj.label][f"{which}_question"]
        prompts.append(ZEAL_FRAME_PROMPT.format(label=obj.label, question=question))
        truth.append(style == {"start": "rim", "end": "outline"}[which])
    auc = roc_auc_score(truth, lvlm.yes_no(images, prompts).p_yes)
    assert auc >= 0.9, auc


def test_world_lvlm_choice_probabilities(world):
    frames = _frames(98, 6, size=(320, 240))
    probs = world.choice_batch(
        [[f] for f, _ in frames], ["Which of these is shown?"] * 6, list(LABELS)
    )
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    single = world.choice([frames[0][0]], "Which of these is shown?", list(LABELS))
    np.testing.assert_allclose(single, probs[0], atol=1e-6)
    # hand computation from the logits: softmax mass of "X" and " X" per option, renormalised
    inputs = world.build_inputs(
        [[frames[0][0]]], [format_choice_prompt("Which of these is shown?", list(LABELS))]
    )
    p = torch.softmax(world.next_token_logits(inputs)[0].double(), -1)
    tok = world.tokenizer
    mass = [
        sum(float(p[i]) for i in {tok.convert_tokens_to_ids(t) for t in (x, "Ġ" + x)})
        for x in "ABCDEFGHIJKL"
    ]
    np.testing.assert_allclose(single, np.array(mass) / sum(mass), atol=1e-6)


def test_world_lvlm_multiple_choice():
    """All 12 labels as options on fresh 320x240 frames: the right letter ≥ 90% of the time."""
    lvlm = load_lvlm("builtin:world-lvlm", device="cpu", batch_size=32)
    frames = _frames(99, 40, size=(320, 240))
    probs = lvlm.choice_batch(
        [[f] for f, _ in frames], ["Which of these is shown?"] * 40, list(LABELS)
    )
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    picked = [LABELS[i] for i in probs.argmax(1)]
    accuracy = np.mean([p == t for p, (_, t) in zip(picked, frames, strict=True)])
    assert accuracy >= 0.9
    single = lvlm.choice([frames[0][0]], "Which of these is shown?", list(LABELS))
    np.testing.assert_allclose(single, probs[0], atol=1e-6)


def test_choice_prompt_letters():
    text = format_choice_prompt("Which?", ["a red circle", "a blue square"])
    assert text.splitlines()[:3] == ["Which?", "A. a red circle", "B. a blue square"]


def test_hooks_embed_and_language_model(world):
    frames = _frames(3, 2)
    inputs = world.build_inputs([[f] for f, _ in frames], ["Is there a red circle?", "Is there?"])
    positions = inputs.image_token_positions()
    # one placeholder per visual token, the same count for each one-frame prompt
    seq_len = int(inputs.image_token_mask[0].sum())
    assert seq_len > 0 and [len(p) for p in positions] == [seq_len, seq_len]
    assert torch.all(inputs.input_ids[0, positions[0]] == world.image_token_id)
    embedded = world.embed_inputs(inputs)
    hidden = world.model.config.text_config.hidden_size
    assert embedded.inputs_embeds.shape == (*inputs.input_ids.shape, hidden)
    # text positions hold the plain token embeddings; image positions do not
    plain = world.model.get_input_embeddings()(inputs.input_ids)
    text_pos = ~inputs.image_token_mask
    torch.testing.assert_close(embedded.inputs_embeds[text_pos], plain[text_pos])
    assert not torch.allclose(
        embedded.inputs_embeds[inputs.image_token_mask], plain[inputs.image_token_mask]
    )
    out = world.run_language_model(embedded, output_attentions=True, output_hidden_states=True)
    layers = world.model.config.text_config.num_hidden_layers
    assert len(out.attentions) == layers and len(out.hidden_states) == layers + 1
    assert out.attentions[0].shape[-2:] == (inputs.input_ids.shape[1],) * 2
    torch.testing.assert_close(
        out.logits[:, -1], world.next_token_logits(inputs), atol=1e-4, rtol=1e-4
    )


def test_generate_is_greedy_text(world):
    ((frame, label),) = _frames(4, 1)
    a = world.generate([[frame]], [f"Is there {label} in this frame?"], max_new_tokens=4)
    b = world.generate([[frame]], [f"Is there {label} in this frame?"], max_new_tokens=4)
    assert a == b and isinstance(a[0], str)


def test_pixel_and_frame_caps():
    big = np.zeros((720, 1280, 3), dtype=np.uint8)
    small = cap_pixels(big, 64 * 64)
    assert small.shape[0] * small.shape[1] <= 64 * 64
    assert abs(small.shape[1] / small.shape[0] - 1280 / 720) < 0.1
    assert cap_pixels(big, None) is big
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(10)]
    kept = cap_frames(frames, 4)
    assert [int(f[0, 0, 0]) for f in kept] == [0, 3, 6, 9]


# ---------------------------------------------------------------------------------------------
# Second family: LLaVA-OneVision, tiny random init, saved with its processor


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    folder = build_tiny_llava_onevision(tmp_path_factory.mktemp("llava_ov"))
    return load_lvlm(f"hf:{folder}", device="cpu")


def test_llava_onevision_family(llava):
    assert llava.model_type == "llava_onevision"
    # WordLevel tokenizer: only the spellings in its vocabulary; "YES" (unknown) is not counted
    assert set(llava.yes_ids) == {"yes", "Yes", " yes", " Yes"}
    assert set(llava.yes_ids.values()) == _vocab_ids(llava.tokenizer, YES_SPELLINGS)
    rng = np.random.default_rng(0)
    frame = render_frame(64, 48, [WorldObject("circle", "red", 0.4, 32, 24)], rng=rng)
    text = "is there a red circle in this frame ?"
    scores = llava.yes_no([[frame]], [text])
    p, yes, no = _hand_p_yes(llava, frame, text)
    assert scores.p_yes[0] == pytest.approx(p, abs=1e-6)
    assert scores.yes_mass[0] == pytest.approx(yes, rel=1e-5)
    assert scores.no_mass[0] == pytest.approx(no, rel=1e-5)
    probs = llava.choice([frame], "which of these shown ?", ["a red circle", "a blue square"])
    assert probs.shape == (2,) and probs.sum() == pytest.approx(1.0)
    inputs = llava.build_inputs([[frame], [frame]], [text, "is there ?"])
    embedded = llava.embed_inputs(inputs)
    out = llava.run_language_model(embedded, output_attentions=True)
    torch.testing.assert_close(
        out.logits[:, -1], llava.next_token_logits(inputs), atol=1e-4, rtol=1e-4
    )
    assert isinstance(llava.generate([[frame]], [text], max_new_tokens=2)[0], str)


# ---------------------------------------------------------------------------------------------
# Errors


def test_folder_without_processor(tmp_path, world):
    world.model.save_pretrained(tmp_path / "m")
    with pytest.raises(ModelError, match="has no processor"):
        load_hf_lvlm(str(tmp_path / "m"))


def test_missing_folder_and_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        load_hf_lvlm(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_hf_lvlm(str(tmp_path / "empty"))


def test_offline_and_not_cached(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        load_lvlm("hf:nobody/not-a-real-model-xyz")


def test_unknown_builtin():
    with pytest.raises(ModelError, match="known: builtin:world-lvlm"):
        load_lvlm("builtin:nope")


def test_chat_prompt_uses_the_models_own_template(world):
    # chat_prompt lists the images first; where they land is the model's template's decision
    # (the world model renders them after the question, so its image tokens can see it).
    text = chat_prompt(world.processor, 2, "Hi?")
    assert text.count("<image>") == 2 and "Hi?" in text
    expected = world.processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Hi?"}],
            }
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert text == expected and text.index("Hi?") < text.index("<image>")


# ---------------------------------------------------------------------------------------------
# The default family, Idefics3 (SmolVLM / SmolVLM2): tiny random init with a processor built here


@pytest.fixture(scope="module")
def idefics3(tmp_path_factory):
    """A 2-layer random Idefics3 saved with an Idefics3Processor (tests/tiny_lvlms.py), loaded
    through `hf:/dir`."""
    folder = build_tiny_idefics3(tmp_path_factory.mktemp("idefics3"))
    return load_lvlm(f"hf:{folder}", device="cpu", dtype="float32")


def test_idefics3_p_yes_equals_hand_computation_and_has_selection_hooks(idefics3):
    from zsar_cli.stages.select_tokens import check_family

    assert idefics3.model.config.model_type == "idefics3"
    frames = _frames(7, 3, size=(64, 48))
    prompts = [f"Is there {label} in this frame?" for _, label in frames]
    scores = idefics3.yes_no([[f] for f, _ in frames], prompts)
    for i, (frame, _) in enumerate(frames):
        p, yes, no = _hand_p_yes(idefics3, frame, prompts[i])
        assert scores.p_yes[i] == pytest.approx(p, abs=1e-6)
        assert scores.yes_mass[i] == pytest.approx(yes, rel=1e-5)
        assert scores.no_mass[i] == pytest.approx(no, rel=1e-5)
    probs = idefics3.choice([frames[0][0]], "Which?", list(LABELS[:3]))
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0)
    check_family(idefics3)  # 1-D RoPE family: token selection and the final pass apply


def test_read_only_frames_score_like_writable_ones_without_warning(world):
    """Frames decoded from Arrow buffers are read-only numpy arrays; scoring them must neither
    warn (torch.from_numpy on a read-only array) nor change the scores."""
    import warnings

    frame, label = _frames(12, 1)[0]
    frozen = frame.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = world.yes_no([[frozen]], [f"Is there {label} in this frame?"]).p_yes
    want = world.yes_no([[frame]], [f"Is there {label} in this frame?"]).p_yes
    np.testing.assert_allclose(got, want, atol=1e-7)
    assert not frozen.flags.writeable  # the caller's array is left as it was
    # torch warns once per process, so the check above alone depends on test order: the helper
    # itself hands the processor a writable copy of a read-only frame and no copy otherwise.
    from zsar_cli.backends.hf_lvlm import writable

    copied = writable(frozen)
    assert copied.flags.writeable and copied is not frozen
    np.testing.assert_array_equal(copied, frozen)
    assert writable(frame) is frame
