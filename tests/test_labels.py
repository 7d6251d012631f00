"""Label files, templates, descriptions and prompt sets (zsar_cli.labels)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsar_cli.artifacts import build_table, write_artifact
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.labels import (
    VIDEO_TEMPLATES,
    build_prompts,
    label_text,
    label_weights,
    load_descriptions,
    random_descriptors,
    read_labels,
    read_templates,
)


def test_read_labels_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# crime classes\n\nAbuse\n  Arrest  \n# trailing\nArson\n")
    assert read_labels(path) == ["Abuse", "Arrest", "Arson"]


def test_read_labels_rejects_duplicates_with_line_numbers(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("a red circle\n\na blue square\na red circle\n")
    with pytest.raises(
        InputError, match=r"labels.txt:4: duplicate label 'a red circle' \(first on line 1\)"
    ):
        read_labels(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_read_labels_rejects_empty_files(tmp_path, text):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(InputError, match="holds no labels"):
        read_labels(path)


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such labels file"):
        read_labels(tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("ApplyEyeMakeup", "apply eye makeup"),
        ("HandstandPushups", "handstand pushups"),
        ("playing_guitar", "playing guitar"),
        ("a red circle", "a red circle"),
        ("Abuse", "Abuse"),
    ],
)
def test_label_text(label, text):
    assert label_text(label) == text


def test_name_prompts_and_video_templates():
    names = build_prompts(["a red circle", "Arson"], "none")
    assert [(p.label, p.text, p.kind) for p in names] == [
        ("a red circle", "a red circle", "name"),
        ("Arson", "Arson", "name"),
    ]
    video = build_prompts(["a red circle", "Arson"], "video")
    assert len(video) == 2 * len(VIDEO_TEMPLATES)
    assert video[0].text == "a video of a red circle."
    assert {p.kind for p in video} == {"template"}
    assert [p.label for p in video[: len(VIDEO_TEMPLATES)]] == ["a red circle"] * len(
        VIDEO_TEMPLATES
    )


def test_template_file(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("# mine\na clip of {}.\nsomeone doing {label}\n")
    assert read_templates(path) == ["a clip of {}.", "someone doing {}"]
    prompts = build_prompts(["Arson"], str(path))
    assert [p.text for p in prompts] == ["a clip of Arson.", "someone doing Arson"]
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder here\n")
    with pytest.raises(InputError, match=r"bad.txt:1: template .* exactly one"):
        read_templates(bad)
    with pytest.raises(ConfigError, match=r"--templates 'nothing\.txt'"):
        build_prompts(["Arson"], "nothing.txt")


def _descriptions():
    return [
        {
            "label": "a red circle",
            "description": "a round red disc",
            "descriptors": ["a round outline", "red color"],
            "start_question": "Does a red circle appear?",
            "end_question": "Does a red circle vanish?",
        },
        {"label": "a blue square", "descriptors": ["four corners"]},
    ]


def test_load_descriptions_json_list_and_mapping(tmp_path):
    as_list = tmp_path / "d.json"
    as_list.write_text(json.dumps(_descriptions()))
    got = load_descriptions(as_list)
    assert got["a red circle"].descriptors == ("a round outline", "red color")
    assert got["a red circle"].start_question == "Does a red circle appear?"
    assert got["a blue square"].description == ""
    as_map = tmp_path / "m.json"
    as_map.write_text(json.dumps({r["label"]: r for r in _descriptions()}))
    assert load_descriptions(as_map) == got


def test_load_descriptions_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    recs = _descriptions()
    table = build_table(
        "descriptions",
        {
            "label": [r["label"] for r in recs],
            "description": [r.get("description", "") for r in recs],
            "descriptors": [r["descriptors"] for r in recs],
            "start_question": [r.get("start_question", "") for r in recs],
            "end_question": [r.get("end_question", "") for r in recs],
        },
    )
    write_artifact(table, path, "descriptions", {"source": "test"})
    got = load_descriptions(path)
    assert got["a blue square"].descriptors == ("four corners",)
    assert got == load_descriptions(_json(tmp_path, recs))


def _json(tmp_path, recs):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(recs))
    return path


def test_load_descriptions_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a readable JSON"):
        load_descriptions(bad)
    dup = _json(tmp_path, [*_descriptions(), {"label": "a blue square", "descriptors": []}])
    with pytest.raises(InputError, match="duplicate description"):
        load_descriptions(dup)
    wrong = tmp_path / "w.json"
    wrong.write_text(json.dumps([{"label": "x", "descriptors": "not a list"}]))
    with pytest.raises(InputError, match="must be a list of strings"):
        load_descriptions(wrong)


def test_descriptor_prompts(tmp_path):
    descs = load_descriptions(_json(tmp_path, _descriptions()))
    prompts = build_prompts(["a red circle", "a blue square"], "none", descs)
    assert [(p.label, p.text, p.kind) for p in prompts] == [
        ("a red circle", "a red circle, which has a round outline", "descriptor"),
        ("a red circle", "a red circle, which has red color", "descriptor"),
        ("a blue square", "a blue square, which has four corners", "descriptor"),
    ]
    wrapped = build_prompts(["a blue square"], "video", descs)
    assert wrapped[0].text == "a video of a blue square, which has four corners."
    with pytest.raises(InputError, match=r"^descriptions: no description for label"):
        build_prompts(["a green triangle"], "none", descs)


def test_random_descriptors_are_seeded():
    a = random_descriptors(["x", "y"], 3, seed=0)
    assert a == random_descriptors(["x", "y"], 3, seed=0)
    assert a != random_descriptors(["x", "y"], 3, seed=1)
    assert all(len(words) == 3 and all(len(d.split()) == 2 for d in words) for words in a.values())
    prompts = build_prompts(["x"], "none", random_descriptor_count=2)
    assert [p.kind for p in prompts] == ["random", "random"]
    assert prompts[0].text == f"x, which has {a['x'][0]}"
    with pytest.raises(ConfigError):
        build_prompts(["x"], "none", {}, random_descriptor_count=2)


def test_label_weights_template_mean_is_renormalised_descriptor_mean_is_not():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    w = label_weights(["a", "b"], ["a", "a", "b", "b"], ["template"] * 2 + ["descriptor"] * 2, e)
    h = np.sqrt(0.5)
    np.testing.assert_allclose(w[0], [h, h], rtol=1e-6)
    # Descriptor rows: a frame's score is the mean cosine over the descriptors.
    np.testing.assert_allclose(w[1], [0.8, 0.4], rtol=1e-6)
    frame = np.array([0.0, 1.0], dtype=np.float32)
    assert float(w[1] @ frame) == pytest.approx((0.0 + 0.8) / 2)


def test_check_labels_in_code():
    with pytest.raises(InputError, match="duplicate"):
        build_prompts(["a", "a"], "none")
    with pytest.raises(InputError, match="no labels"):
        build_prompts([], "none")
