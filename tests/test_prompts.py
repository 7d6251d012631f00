"""Prompt text (`zsar_cli.prompts`) and the world models' prompt contracts.

The contract checks run before any weights load, so a refused model costs milliseconds here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from zsar_cli import prompts
from zsar_cli.backends import MODELS_DIR, load_encoder, load_lvlm
from zsar_cli.backends.contract import (
    CONTRACT_FILE,
    check_clip_folder,
    check_lvlm_folder,
)
from zsar_cli.errors import ModelError

REBUILD_LVLM = "rebuild it with scripts/build_world_lvlm.sh"


def test_prompt_modules_import_nothing_heavy():
    code = (
        "import sys; import zsar_cli.prompts, zsar_cli.backends, zsar_cli.backends.contract; "
        "print(','.join(m for m in ('torch', 'numpy', 'transformers', 'open_clip') "
        "if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def test_choice_prompt_layout_and_reexports():
    text = prompts.format_choice_prompt("  Which one?  ", ["a red circle", "a blue square"])
    assert text == (
        "Which one?\nA. a red circle\nB. a blue square\n"
        "Answer with the option's letter from the given choices directly."
    )
    from zsar_cli.labels import VIDEO_TEMPLATES
    from zsar_cli.stages.query_lvlm_config import DEFAULT_CHOICE_QUESTION, ZEAL_FRAME_PROMPT

    assert VIDEO_TEMPLATES is prompts.VIDEO_TEMPLATES
    assert ZEAL_FRAME_PROMPT is prompts.ZEAL_FRAME_PROMPT
    assert DEFAULT_CHOICE_QUESTION is prompts.DEFAULT_CHOICE_QUESTION


def test_shipped_models_carry_a_contract_matching_the_code():
    check_lvlm_folder(MODELS_DIR / "world-lvlm", "builtin:world-lvlm", required=True)
    check_clip_folder(MODELS_DIR / "world-clip", "builtin:world-clip", required=True)
    record = json.loads((MODELS_DIR / "world-lvlm" / CONTRACT_FILE).read_text())
    assert record["option_line"] == "A. {option}"
    assert record["option_letters"] == "ABCDEFGHIJKL"  # the build offers up to 12 options


@pytest.fixture
def world_lvlm_copy(tmp_path):
    folder = tmp_path / "world-lvlm"
    shutil.copytree(MODELS_DIR / "world-lvlm", folder)
    return folder


def _edit_contract(folder, **changes):
    path = folder / CONTRACT_FILE
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def test_copied_folder_with_an_altered_contract_is_refused_in_one_line(world_lvlm_copy):
    _edit_contract(world_lvlm_copy, option_line="A) {option}")
    with pytest.raises(ModelError) as err:
        load_lvlm(f"hf:{world_lvlm_copy}", device="cpu")
    assert str(err.value) == (
        f"hf:{world_lvlm_copy} was trained with option layout 'A) {{option}}' but zsar now "
        f"formats 'A. {{option}}'; {REBUILD_LVLM}"
    )


def test_builtin_is_refused_once_zsar_formats_options_differently(monkeypatch):
    monkeypatch.setattr(prompts, "OPTION_LINE", "{letter}) {option}")
    with pytest.raises(ModelError) as err:
        load_lvlm("builtin:world-lvlm", device="cpu")
    assert str(err.value) == (
        "builtin:world-lvlm was trained with option layout 'A. {option}' but zsar now formats "
        f"'A) {{option}}'; {REBUILD_LVLM}"
    )


def test_changed_spellings_and_chat_template_are_named(monkeypatch, world_lvlm_copy):
    monkeypatch.setattr(prompts, "NO_SPELLINGS", ("no", "No", "NO", " no", " No", " Nope"))
    with pytest.raises(ModelError, match=r"no spellings #6 ' NO' but zsar now reads ' Nope'"):
        check_lvlm_folder(world_lvlm_copy, "hf:copy")
    monkeypatch.undo()
    template = world_lvlm_copy / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|im_start|>assistant", "<|im_start|>bot"))
    with pytest.raises(ModelError, match=r"^hf:copy was trained with chat template sha256 '"):
        check_lvlm_folder(world_lvlm_copy, "hf:copy")


def test_builtin_without_a_contract_is_a_broken_checkout(monkeypatch, world_lvlm_copy):
    import zsar_cli.backends

    (world_lvlm_copy / CONTRACT_FILE).unlink()
    monkeypatch.setattr(zsar_cli.backends, "MODELS_DIR", world_lvlm_copy.parent)
    with pytest.raises(ModelError, match=r"^builtin:world-lvlm: .*prompt_contract.json is missing"):
        load_lvlm("builtin:world-lvlm")
    # Any other folder without one is loaded unchecked.
    check_lvlm_folder(world_lvlm_copy, "hf:copy")


def test_world_clip_refused_once_the_templates_change(monkeypatch):
    changed = tuple(t.replace("a clip showing", "a clip of") for t in prompts.VIDEO_TEMPLATES)
    monkeypatch.setattr(prompts, "VIDEO_TEMPLATES", changed)
    with pytest.raises(ModelError) as err:
        load_encoder("builtin:world-clip", device="cpu")
    assert str(err.value) == (
        "builtin:world-clip was trained with prompt templates #4 'a clip showing {}.' but zsar "
        "now uses 'a clip of {}.'; rebuild it with python scripts/build_world_clip.py"
    )


def test_clip_checkpoint_folder_with_an_altered_contract_is_refused(tmp_path):
    folder = tmp_path / "world-clip"
    shutil.copytree(MODELS_DIR / "world-clip", folder)
    _edit_contract(folder, descriptor_pattern="{label} with {descriptor}")
    with pytest.raises(ModelError, match=r"was trained with descriptor prompt '\{label\} with"):
        load_encoder(f"openclip:zsar-world-rn@{folder}/world-clip.safetensors", device="cpu")


def test_choice_options_and_label_questions_read_as_words():
    """Dataset class names (CamelCase, snake_case) reach the LVLM as words, as CLIP's prompts
    do; labels that are already words are unchanged (the world models' prompts)."""
    from zsar_cli.prompts import format_choice_prompt, label_text
    from zsar_cli.stages.queries import _fill

    text = format_choice_prompt("Which?", ["RoadAccidents", "brush_hair", "a red circle"])
    assert text.splitlines()[1:4] == ["A. road accidents", "B. brush hair", "C. a red circle"]
    assert label_text("a red circle") == "a red circle"
    assert _fill("Is someone doing {label}?", "ApplyEyeMakeup", "q") == (
        "Is someone doing apply eye makeup?"
    )
