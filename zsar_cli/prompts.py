"""Prompt text that does not depend on any model: the one place its wording and layout live.

Input: questions, labels and options. Output: the user text of LVLM prompts (lettered multiple
choice, ZEAL's frame prompt), the user turn handed to a chat template, the spellings of yes and no
whose next-token mass gives p_yes, and the CLIP prompt templates.

Backends (`zsar_cli.backends.hf_lvlm`), the stage configs and the world-model build scripts all
import these, so a model is trained on exactly the prompts zsar later asks it; the shipped models
record them (`zsar_cli.backends.contract`) and refuse to load when they change. Standard library
only: the CLI reads the defaults here without importing numpy or torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from zsar_cli.errors import ConfigError

# p_yes = mass(yes) / (mass(yes) + mass(no)) over every single-token spelling the tokenizer has;
# the leading-space forms are how BPE vocabularies spell a word after the generation prompt.
YES_SPELLINGS: tuple[str, ...] = ("yes", "Yes", "YES", " yes", " Yes", " YES")
NO_SPELLINGS: tuple[str, ...] = ("no", "No", "NO", " no", " No", " NO")

# Multiple choice: the question, one lettered line per option, then the instruction (the layout
# LLaVA-style instruction data uses, so pretrained models answer with the letter token).
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
OPTION_LINE = "{letter}. {option}"
CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
DEFAULT_CHOICE_QUESTION = "Which of these is shown?"

# ZEAL's per-frame prompt (josaklil-ai/zeal): the label as context, then a start/end question.
ZEAL_FRAME_PROMPT = "This is a frame from a video of {label}. {question} Only answer yes or no."

# CLIP prompts. A small video-flavoured ensemble in the spirit of ActionCLIP/ViFi-CLIP prompts;
# kept generic ("a video of {}" rather than "a video of a person {}") so object-like labels read
# naturally.
VIDEO_TEMPLATES: tuple[str, ...] = (
    "a video of {}.",
    "a photo of {}.",
    "a frame from a video of {}.",
    "a clip showing {}.",
    "an example of {}.",
    "a demonstration of {}.",
    "a video of a person {}.",
    "footage of {}.",
)
DESCRIPTOR_PATTERN = "{label}, which has {descriptor}"


def option_letters(count: int) -> str:
    """The letters of `count` options (A, B, C, ...)."""
    if not 1 <= count <= len(OPTION_LETTERS):
        raise ConfigError(f"multiple choice needs 1..{len(OPTION_LETTERS)} options, got {count}")
    return OPTION_LETTERS[:count]


def label_text(label: str) -> str:
    """How a label reads inside a prompt: `ApplyEyeMakeup`/`apply_eye_makeup` → `apply eye makeup`.

    Labels that already contain spaces are used as written.
    """
    if any(ch.isspace() for ch in label):
        return label
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", label)
    words = re.sub(r"[_\-]+", " ", words)
    return " ".join(words.split()).lower() if words != label else label


def format_choice_prompt(question: str, options: Sequence[str]) -> str:
    """`question`, one `X. option` line per option, then the answer-with-a-letter instruction.
    Options read as words (`label_text`: "RoadAccidents" → "road accidents"), as CLIP's prompts
    do: an LVLM reads "ApplyEyeMakeup" worse than the words."""
    letters = option_letters(len(options))
    lines = [
        question.strip(),
        *(
            OPTION_LINE.format(letter=letter, option=label_text(opt))
            for letter, opt in zip(letters, options, strict=True)
        ),
    ]
    return "\n".join([*lines, CHOICE_INSTRUCTION])


def user_turn(num_images: int, text: str, video: bool = False) -> list[dict[str, object]]:
    """The chat messages of one prompt: a single user turn, its images (or one video) first,
    then the text.

    Where the images end up is the chat template's business (the world LVLM's puts them after
    the text); this order is what every template receives."""
    kind = "video" if video else "image"
    content: list[dict[str, str]] = [{"type": kind} for _ in range(1 if video else num_images)]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def context_turns(
    examples: Sequence[tuple[int, str, str]], num_images: int, text: str, video: bool = False
) -> list[dict[str, object]]:
    """In-context examples before the query: per example (its image count, its text, its correct
    answer) a user turn laid out like the query's and an assistant turn with the answer, then the
    query's own user turn. With no examples this is `user_turn`."""
    messages: list[dict[str, object]] = []
    for count, example_text, answer in examples:
        messages += user_turn(count, example_text)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages + user_turn(num_images, text, video=video)
