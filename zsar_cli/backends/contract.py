"""The prompt contract of a trained model folder: the prompt format the model was trained on.

Input: a model folder's `prompt_contract.json` (written by `scripts/build_world_lvlm_fastvlm.py`
and `scripts/build_world_clip.py` next to the weights) and, for an LVLM, the folder's chat
template. Output: nothing when the format zsar builds now (`zsar_cli.prompts`) matches the
recorded one, else one `ModelError` line naming the first difference and how to rebuild.

Why: the world models are tiny and trained on exactly zsar's prompts (the option line "B. a blue
square" is even a single token of the world LVLM). A changed option layout, instruction or yes/no
spelling would not crash anything; the model would just answer at chance, silently. The shipped
models must carry a contract; any other folder is checked when it has one.

The file: {"contract_version": 1, "model": NAME, "rebuild": COMMAND, FIELD: VALUE, ...} with the
fields of `LVLM_FIELDS` or `CLIP_FIELDS`. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from zsar_cli import prompts
from zsar_cli.errors import ModelError

CONTRACT_FILE = "prompt_contract.json"
CONTRACT_VERSION = 1
# (field, what it is, what zsar does with it now): differences are reported in this order, the
# most telling first (a changed option line also changes the choice layout).
LVLM_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("option_line", "option layout", "formats"),
    ("option_letters", "option letters", "uses"),
    ("choice_instruction", "choice instruction", "writes"),
    ("choice_layout", "choice prompt layout", "builds"),
    ("yes_spellings", "yes spellings", "reads"),
    ("no_spellings", "no spellings", "reads"),
    ("frame_prompt", "ZEAL frame prompt", "asks"),
    ("user_turn", "user turn", "sends"),
    ("chat_template_sha256", "chat template sha256", "finds"),
)
CLIP_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("video_templates", "prompt templates", "uses"),
    ("descriptor_pattern", "descriptor prompt", "writes"),
)
# Where transformers saves a processor's chat template, newest layout first.
TEMPLATE_FILES: tuple[str, ...] = (
    "chat_template.jinja",
    "chat_template.json",
    "processor_config.json",
    "tokenizer_config.json",
)


def folder_chat_template(folder: Path) -> str | None:
    """The chat template a processor saved in `folder`, as AutoProcessor will read it."""
    for name in TEMPLATE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if name.endswith(".jinja"):
            return text
        template = json.loads(text).get("chat_template")
        if isinstance(template, str):
            return template
    return None


def sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def lvlm_contract(chat_template: str | None, num_options: int) -> dict[str, Any]:
    """The prompt format zsar builds now for an LVLM with this chat template, offered at most
    `num_options` options (only those letters are part of what the model learned)."""
    placeholder_turn = prompts.user_turn(1, "{text}")
    return {
        "option_line": prompts.OPTION_LINE.format(letter="A", option="{option}"),
        "option_letters": prompts.OPTION_LETTERS[:num_options],
        "choice_instruction": prompts.CHOICE_INSTRUCTION,
        "choice_layout": prompts.format_choice_prompt("{question}", ["{option}", "{option}"]),
        "yes_spellings": list(prompts.YES_SPELLINGS),
        "no_spellings": list(prompts.NO_SPELLINGS),
        "frame_prompt": prompts.ZEAL_FRAME_PROMPT,
        "user_turn": json.dumps(placeholder_turn, sort_keys=True),
        "chat_template_sha256": sha256(chat_template),
    }


def clip_contract() -> dict[str, Any]:
    """The CLIP prompt format zsar builds now."""
    return {
        "video_templates": list(prompts.VIDEO_TEMPLATES),
        "descriptor_pattern": prompts.DESCRIPTOR_PATTERN,
    }


def write_contract(folder: Path, model: str, rebuild: str, fields: dict[str, Any]) -> Path:
    """Record `fields` as the prompt format of the model in `folder` (for the build scripts)."""
    path = Path(folder) / CONTRACT_FILE
    record = {"contract_version": CONTRACT_VERSION, "model": model, "rebuild": rebuild, **fields}
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_contract(folder: Path, name: str, required: bool) -> dict[str, Any] | None:
    path = Path(folder) / CONTRACT_FILE
    if not path.is_file():
        if required:
            raise ModelError(
                f"{name}: {path} is missing (the prompt format it was trained on); restore the "
                "model folder or rebuild it"
            )
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{name}: unreadable {path} ({exc})") from None
    if not isinstance(record, dict) or record.get("contract_version") != CONTRACT_VERSION:
        raise ModelError(f"{name}: {path} is not a version-{CONTRACT_VERSION} prompt contract")
    return record


def _difference(what: str, verb: str, recorded: Any, current: Any) -> str:
    if isinstance(recorded, list) and isinstance(current, list):
        if len(recorded) != len(current):
            return f"{len(recorded)} {what} but zsar now {verb} {len(current)}"
        i = next(i for i, (a, b) in enumerate(zip(recorded, current, strict=True)) if a != b)
        return f"{what} #{i + 1} {recorded[i]!r} but zsar now {verb} {current[i]!r}"
    return f"{what} {recorded!r} but zsar now {verb} {current!r}"


def compare(
    record: dict[str, Any],
    current: dict[str, Any],
    fields: tuple[tuple[str, str, str], ...],
    name: str,
    where: Path,
) -> None:
    """Raise on the first field whose recorded value differs from `current`."""
    rebuild = record.get("rebuild") or "the script that built it"
    for key, what, verb in fields:
        if key not in record:
            raise ModelError(
                f"{name}: {where / CONTRACT_FILE} does not record its {what}; rebuild it with "
                f"{rebuild}"
            )
        if record[key] != current[key]:
            difference = _difference(what, verb, record[key], current[key])
            raise ModelError(f"{name} was trained with {difference}; rebuild it with {rebuild}")


def check_lvlm_folder(folder: Path, name: str, required: bool = False) -> None:
    """Refuse an LVLM folder whose recorded prompt format is not what zsar builds now."""
    record = read_contract(folder, name, required)
    if record is None:
        return
    letters = record.get("option_letters")
    current = lvlm_contract(
        folder_chat_template(Path(folder)),
        len(letters) if isinstance(letters, str) else len(prompts.OPTION_LETTERS),
    )
    compare(record, current, LVLM_FIELDS, name, Path(folder))


def check_clip_folder(folder: Path, name: str, required: bool = False) -> None:
    """Refuse a CLIP checkpoint folder whose recorded prompt templates are not zsar's now."""
    record = read_contract(folder, name, required)
    if record is not None:
        compare(record, clip_contract(), CLIP_FIELDS, name, Path(folder))
