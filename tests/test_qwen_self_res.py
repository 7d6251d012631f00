"""Self-ReS on Qwen2.5-VL (multimodal 3-D RoPE), and Qwen-VL in every query mode.

The kept visual tokens keep the (t, h, w) positions computed on the whole sequence (gathered,
not renumbered), so with every token kept the final pass is the plain frame path: p_yes to 1e-4
(through the float16 tokens artifact as well). Frame and clip level, yes/no, choice and
generate run on tiny random Qwen2.5-VL and Qwen3-VL models. Qwen3-VL's kept tokens also carry
their DeepStack features (added in its early decoder layers), stored in the tokens artifact and
re-fed at the kept positions: budget = all gives the plain p_yes, and the features do matter.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsar_cli.artifacts import read_artifact
from zsar_cli.backends import load_lvlm
from zsar_cli.errors import ModelError
from zsar_cli.stages import query_lvlm
from zsar_cli.stages.query_lvlm import QueryConfig
from zsar_cli.stages.select_tokens import FrameItem, select_video_tokens, tokens_table
from zsar_cli.stages.select_tokens_config import SelectTokensConfig
from zsar_cli.stages.self_res import (
    answer_choice,
    answer_yes_no,
    final_inputs,
    kept_from_rows,
    kept_from_selection,
)
from zsar_cli.stages.token_scores import check_family, uncapped_frames
from zsar_cli.synthetic import random_object, render_frame

from .tiny_lvlms import build_tiny_qwen2_5_vl, build_tiny_qwen3_vl, write_frame_items

torch.set_num_threads(2)
W, H = 64, 48
QUESTION = "is there a red circle in this frame ?"


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    folder = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen25"))
    return load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)


def frames(count=6, per_segment=3, seed=0) -> list[FrameItem]:
    rng = np.random.default_rng(seed)
    obj = random_object(rng, W, H)
    return [
        FrameItem(i, i / 2, i // per_segment, render_frame(W, H, [obj], rng=rng))
        for i in range(count)
    ]


def config(**kw) -> SelectTokensConfig:
    return SelectTokensConfig(question=QUESTION, **kw)


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    folder = build_tiny_qwen3_vl(tmp_path_factory.mktemp("qwen3"))
    return load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("scorer", ["attention", "similarity"])
def test_all_tokens_kept_gives_the_plain_p_yes(request, family, scorer):
    qwen = request.getfixturevalue("qwen" if family == "qwen2_5_vl" else "qwen3")
    check_family(qwen)
    items = frames()
    one = select_video_tokens(qwen, "v", items[:1], QUESTION, config(budget=1, segments=1))
    everything = len(items) * one.tokens_per_frame
    sel = select_video_tokens(qwen, "v", items, QUESTION, config(budget=everything, scorer=scorer))
    options = ["a red circle", "a blue square", "a green triangle"]
    with uncapped_frames(qwen):
        plain = qwen.yes_no([[f.image for f in items]], [QUESTION])
        plain_choice = qwen.choice([f.image for f in items], "which of these is shown ?", options)
    p_yes, yes, _ = answer_yes_no(qwen, kept_from_selection(sel), W, H, QUESTION)
    assert abs(p_yes - float(plain.p_yes[0])) <= 1e-4
    assert yes == pytest.approx(float(plain.yes_mass[0]), rel=1e-3)
    stored = kept_from_rows(tokens_table([sel]))  # float16 storage
    assert abs(answer_yes_no(qwen, stored, W, H, QUESTION)[0] - float(plain.p_yes[0])) <= 1e-4
    probs = answer_choice(
        qwen, kept_from_selection(sel), W, H, "which of these is shown ?", options
    )
    np.testing.assert_allclose(probs, plain_choice, atol=1e-4)


def test_kept_tokens_keep_their_whole_sequence_positions(qwen):
    items = frames()
    per_frame = select_video_tokens(qwen, "v", items[:1], QUESTION, config(budget=1, segments=1))
    budget = len(items) * per_frame.tokens_per_frame // 3
    sel = select_video_tokens(qwen, "v", items, QUESTION, config(budget=budget))
    kept = kept_from_selection(sel)
    embedded = final_inputs(qwen, kept, W, H, QUESTION)
    with uncapped_frames(qwen):
        whole = qwen.build_inputs([[f.image for f in items[: len(kept)]]], [QUESTION])
    slots = whole.image_token_mask[0].nonzero().flatten()
    n = per_frame.tokens_per_frame
    wanted = torch.cat([slots[f * n + torch.as_tensor(k.token_index)] for f, k in enumerate(kept)])
    visual = embedded.image_token_mask[0]
    assert embedded.position_ids is not None and embedded.position_ids.shape[0] == 3
    assert int(visual.sum()) == budget
    assert torch.equal(embedded.position_ids[:, 0, visual], whole.position_ids[:, 0, wanted])
    # The text after the frames keeps its own positions (not shifted by the dropped tokens).
    tail = int((~whole.image_token_mask[0]).sum()) - int((~visual).sum())
    assert tail == 0
    assert torch.equal(embedded.position_ids[:, 0, -5:], whole.position_ids[:, 0, -5:])
    p_yes, _, _ = answer_yes_no(qwen, kept, W, H, QUESTION)
    assert 0.0 < p_yes < 1.0


def test_qwen3_vl_kept_tokens_carry_their_deepstack_features(qwen3, qwen):
    """Each kept token stores one feature per DeepStack layer (here 2) beside its embedding;
    the final pass re-feeds them at the kept tokens' positions, and without them (zeroed) the
    answer changes, so they are not decoration. Qwen2.5-VL artifacts get no such column."""
    items = frames()
    per_frame = select_video_tokens(qwen3, "v", items[:1], QUESTION, config(budget=1))
    budget = 2 * per_frame.tokens_per_frame  # a third of the 6 frames' tokens
    sel = select_video_tokens(qwen3, "v", items, QUESTION, config(budget=budget))
    hidden = int(qwen3.model.get_input_embeddings().weight.shape[1])
    assert len(sel.deepstack) == budget
    assert all(tuple(d.shape) == (2, hidden) for d in sel.deepstack)
    table = tokens_table([sel])
    assert table.column("deepstack").null_count == 0
    assert len(table.column("deepstack")[0].as_py()) == 2 * hidden
    stored = kept_from_rows(table)
    kept = kept_from_selection(sel)
    for a, b in zip(stored, kept, strict=True):
        torch.testing.assert_close(a.deepstack, b.deepstack.float(), atol=2e-3, rtol=2e-3)
    embedded = final_inputs(qwen3, kept, W, H, QUESTION)
    mask = embedded.extra["visual_pos_masks"]
    assert torch.equal(mask, embedded.image_token_mask) and int(mask.sum()) == budget
    layers = embedded.extra["deepstack_visual_embeds"]
    assert len(layers) == 2 and all(tuple(x.shape) == (budget, hidden) for x in layers)
    torch.testing.assert_close(layers[1], torch.cat([k.deepstack[:, 1] for k in kept]))
    # A random model's p_yes sits near 0.5 either way: compare the decoder's last hidden states
    # (measured: 30% relative change when the features are zeroed).
    fed = qwen3.run_language_model(embedded, output_hidden_states=True).hidden_states[-1]
    for frame in kept:
        frame.deepstack = torch.zeros_like(frame.deepstack)
    zeroed = final_inputs(qwen3, kept, W, H, QUESTION)
    without = qwen3.run_language_model(zeroed, output_hidden_states=True).hidden_states[-1]
    assert float((fed - without).norm() / fed.norm()) > 0.05
    other = select_video_tokens(qwen, "v", items, QUESTION, config(budget=budget))
    assert not other.deepstack and "deepstack" not in tokens_table([other]).column_names


def test_qwen3_vl_tokens_without_deepstack_refused_in_one_line(qwen3):
    """Tokens stored without DeepStack features (an artifact from before the column) cannot
    answer on Qwen3-VL: one line says what is missing and what to do."""
    sel = select_video_tokens(qwen3, "v", frames(2, 2), QUESTION, config(budget=4))
    table = tokens_table([sel]).drop_columns(["deepstack"])
    with pytest.raises(ModelError) as info:
        answer_yes_no(qwen3, kept_from_rows(table), W, H, QUESTION)
    message = str(info.value)
    assert "DeepStack" in message and "select-tokens" in message and "\n" not in message


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def any_qwen(request, qwen, qwen3):
    return qwen if request.param == "qwen2_5_vl" else qwen3


@pytest.mark.parametrize("level", ["frame", "clip"])
@pytest.mark.parametrize("mode", ["yesno", "choice", "generate"])
def test_every_mode_and_level_reuse_equals_own_forward(any_qwen, tmp_path, level, mode):
    """query-lvlm on a Qwen family: the cached path's answers equal the model's own forward."""
    src = write_frame_items(tmp_path / "frames.parquet", frames(4, 2))
    labels = tmp_path / "labels.txt"
    labels.write_text("red circle\nblue square\n")
    kw = {"question": "is there a {label} ?"} if mode != "choice" else {}
    cfg = QueryConfig(mode=mode, level=level, labels_file=str(labels), max_new_tokens=3, **kw)
    answers = []
    for reuse in (False, True):
        any_qwen.reuse = reuse
        any_qwen.features.clear()
        out = tmp_path / f"answers-{reuse}.parquet"
        query_lvlm.run(src, out, cfg, lvlm=any_qwen, force=True)
        answers.append(read_artifact(out, "answers"))
    plain, cached = (a.table for a in answers)
    if level == "clip":  # native video by default for both Qwen families, and recorded
        assert answers[1].meta.extra["video_input"] == "native"
    assert answers[1].meta.extra["model_revision"].startswith("sha256:")
    units = 4 if level == "frame" else 2
    # choice: 2 options asked in both rotations (--option-order circular), a row per ordering
    assert plain.num_rows == cached.num_rows == units * 2 * (2 if mode == "choice" else 1)
    if mode == "generate":
        assert plain.column("answer").to_pylist() == cached.column("answer").to_pylist()
    else:
        np.testing.assert_allclose(
            cached.column("p_yes").to_numpy(), plain.column("p_yes").to_numpy(), atol=1e-5
        )


@pytest.mark.parametrize("build", [build_tiny_qwen2_5_vl, build_tiny_qwen3_vl])
def test_select_tokens_and_query_from_tokens_cli_on_qwen(tmp_path, runner, build):
    """The CLI chain on a Qwen2.5-VL and a Qwen3-VL folder: select-tokens keeps every token
    (Qwen3-VL: with its DeepStack features), query-lvlm --tokens answers with the plain clip's
    p_yes."""
    from zsar_cli.cli.app import app

    folder = build(tmp_path / "qwen")
    src = write_frame_items(tmp_path / "dense.parquet", frames(4, 2))
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32")
    per_frame = select_video_tokens(
        lvlm, "v", frames(1, 1), QUESTION, config(budget=1)
    ).tokens_per_frame
    tokens, answers = tmp_path / "tokens.parquet", tmp_path / "answers.parquet"
    common = ["-m", f"hf:{folder}", "--question", QUESTION, "--device", "cpu"]
    # Per-frame image tokens here (native video tokens: tests/test_self_res_video.py).
    budget = ["--budget", str(4 * per_frame), "--video-input", "images"]
    chosen = runner.invoke(app, ["select-tokens", str(src), "-o", str(tokens), *common, *budget])
    assert chosen.exit_code == 0, chosen.output
    asked = runner.invoke(
        app, ["query-lvlm", str(src), "--tokens", str(tokens), "-o", str(answers), *common]
    )
    assert asked.exit_code == 0, asked.output
    table = read_artifact(answers, "answers").table
    stored = read_artifact(tokens, "tokens").table
    assert ("deepstack" in stored.column_names) == (lvlm.model_type == "qwen3_vl")
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([[f.image for f in frames(4, 2)]], [QUESTION])
    assert abs(table.column("p_yes")[0].as_py() - float(plain.p_yes[0])) <= 1e-3  # float16 store


def test_positions_computed_once_equal_the_models_own(any_qwen):
    """The 3-D positions zsar computes (and Self-ReS gathers) are the ones the model computes
    itself from the same inputs: one frame, several frames, and (Qwen3-VL) a native clip; the
    logits with and without them passed are identical."""
    from zsar_cli.backends.lvlm_base import Clip, set_video_input

    images = [f.image for f in frames(3, 3)]
    layouts: list[list] = [images[:1], images]
    if any_qwen.model_type == "qwen3_vl":  # Qwen2.5-VL clips: real times, tested elsewhere
        layouts.append(Clip(images, [0.0, 0.5, 1.0]))
    set_video_input(any_qwen, "native")
    base = any_qwen.model.model
    for layout in layouts:
        inputs = any_qwen.build_inputs([layout], [QUESTION])
        t = inputs.tensors
        base.rope_deltas = None
        own = base.compute_3d_position_ids(
            input_ids=t["input_ids"],
            inputs_embeds=any_qwen.model.get_input_embeddings()(t["input_ids"]),
            image_grid_thw=t.get("image_grid_thw"),
            video_grid_thw=t.get("video_grid_thw"),
            attention_mask=t["attention_mask"],
            cache=None,
            mm_token_type_ids=t.get("mm_token_type_ids"),
        )
        assert torch.equal(own, inputs.position_ids)
        with torch.inference_mode():
            kwargs = any_qwen._forward_kwargs(inputs)
            given = any_qwen.model(**kwargs).logits[0, -1]
            kwargs.pop("position_ids")
            assert torch.equal(given, any_qwen.model(**kwargs).logits[0, -1])
