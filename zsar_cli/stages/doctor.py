"""`zsar doctor --model SPEC`: check an LVLM before a dataset run.

Input: a model spec (and device/dtype/pixel settings as a run would use them). Output: a
`DoctorReport` (printed by the CLI, or JSON): the family, device and dtype, the resolved
revision, which yes/no and option-letter spellings are single tokens (only those are scored),
visual tokens per frame and per clip, whether clips go in as native video, and a known-answer
check: p_yes of "Is there any object?" on generated frames with a large coloured shape vs empty
frames must separate, per frame and per clip (video mode). A trained model separates them by a
wide margin; a random-init one does not, and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from zsar_cli.prompts import NO_SPELLINGS, YES_SPELLINGS, option_letters
from zsar_cli.stages.doctor_config import DoctorConfig

QUESTION = "Is there any object in this frame?"
CLIP_QUESTION = "Is there any object?"
FRAME_SIZE = (640, 360)
CLIP_TIMES = (0.0, 1.0, 2.0, 3.0)  # a 4-frame clip at 1 fps


@dataclass
class KnownAnswer:
    """Mean p_yes with a large shape vs on empty frames, and whether they separate."""

    level: str
    with_shape: float
    empty: float
    separates: bool


@dataclass
class DoctorReport:
    spec: str
    family: str
    device: str
    dtype: str
    revision: str
    yes_spellings: dict[str, int]
    no_spellings: dict[str, int]
    letters: dict[str, list[int]]
    tokens_per_frame: int | None
    tokens_per_clip: int | None
    video_input: str
    video_note: str | None
    checks: list[KnownAnswer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.separates for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def known_frames(count: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`count` frames each with one large shape (random colour, shape and place) and as many
    empty frames with the same backgrounds."""
    from zsar_cli.synthetic import random_object, render_frame

    rng = np.random.default_rng(seed)
    width, height = FRAME_SIZE
    shapes, empties = [], []
    for _ in range(count):
        background = int(rng.integers(90, 171))
        obj = random_object(rng, width, height)
        obj = replace(obj, size=max(obj.size, 0.45))
        shapes.append(render_frame(width, height, [obj], background=background, rng=rng))
        empties.append(render_frame(width, height, [], background=background, rng=rng))
    return shapes, empties


def _visual_tokens(lvlm: Any, images: Any, question: str) -> int | None:
    build = getattr(lvlm, "build_inputs", None)
    if build is None:
        return None
    return int(build([images], [question]).image_token_mask[0].sum())


def diagnose(config: DoctorConfig, lvlm: Any | None = None) -> DoctorReport:
    """Load the model (unless given) and run every check."""
    from zsar_cli.backends import load_lvlm, model_record
    from zsar_cli.backends.hf_inputs import single_token_ids
    from zsar_cli.backends.lvlm_base import Clip, set_video_input

    cfg = config.validated()
    if lvlm is None:
        lvlm = load_lvlm(
            cfg.model,
            device=cfg.device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            max_pixels=cfg.max_pixels,
            max_frames=None,
        )
    support = getattr(lvlm, "video_support", None)
    note = support() if callable(support) else "this backend has no video input"
    mode = set_video_input(lvlm, cfg.video_input)
    tokenizer = getattr(lvlm, "tokenizer", None)
    letters: dict[str, list[int]] = {}
    if tokenizer is not None:
        for letter in option_letters(5):
            found = single_token_ids(tokenizer, (letter, " " + letter))
            letters[letter] = sorted(set(found.values()))
    model = getattr(lvlm, "model", None)
    shapes, empties = known_frames(4, seed=2024)
    clip_shape = Clip([shapes[0]] * len(CLIP_TIMES), CLIP_TIMES)
    report = DoctorReport(
        spec=lvlm.spec,
        family=str(getattr(lvlm, "model_type", "?")),
        device=str(getattr(lvlm, "device", "?")),
        dtype=str(getattr(model, "dtype", "?")).replace("torch.", ""),
        revision=model_record(lvlm.spec).get("model_revision", ""),
        yes_spellings=dict(getattr(lvlm, "yes_ids", single_token_ids(tokenizer, YES_SPELLINGS))),
        no_spellings=dict(getattr(lvlm, "no_ids", single_token_ids(tokenizer, NO_SPELLINGS))),
        letters=letters,
        tokens_per_frame=_visual_tokens(lvlm, [shapes[0]], QUESTION),
        tokens_per_clip=_visual_tokens(lvlm, clip_shape, CLIP_QUESTION),
        video_input=mode,
        video_note=note,
    )
    frame = lvlm.yes_no([[im] for im in shapes + empties], [QUESTION] * (2 * len(shapes)))
    p = np.asarray(frame.p_yes)
    report.checks.append(_check("frame", p[: len(shapes)], p[len(shapes) :], cfg.margin))
    clips = [Clip([im] * len(CLIP_TIMES), CLIP_TIMES) for im in (shapes[:2] + empties[:2])]
    clip = np.asarray(lvlm.yes_no(clips, [CLIP_QUESTION] * len(clips)).p_yes)
    report.checks.append(_check(f"clip ({mode})", clip[:2], clip[2:], cfg.margin))
    return report


def _check(level: str, with_shape: np.ndarray, empty: np.ndarray, margin: float) -> KnownAnswer:
    a, b = float(np.mean(with_shape)), float(np.mean(empty))
    return KnownAnswer(level, a, b, a - b >= margin)
