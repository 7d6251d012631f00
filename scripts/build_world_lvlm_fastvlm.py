"""Build a tiny FastVLM-family world LVLM (a timm ResNet vision tower + a Qwen2 language model).

Input: frames rendered by `zsar_cli.synthetic` (fixed seeds; random sizes 160x120..640x480,
backgrounds 90..170, noise 0..12, JPEG round trip, 0-2 objects). Output: a transformers
`fast_vlm` model folder (FastVlmForConditionalGeneration: a `timm_wrapper` resnet10t created
offline with pretrained=False, output stride 16 on 64-px inputs = a 4x4 grid of 16 spatial image
tokens, a LLaVA projector and a 3-layer Qwen2), a locally trained byte-level BPE tokenizer with a
ChatML chat template, and a LlavaProcessor + CLIPImageProcessor (squash-resize to 64x64), all
loadable with `hf:/dir` through AutoProcessor + AutoModelForImageTextToText like a real model.

Training: (1) the vision tower + projector learn each image token's colour, shape and phase
style (dense targets from the rendered masks; tokens also pulled towards the word embeddings of
their colour and shape); (2) the whole model learns, with the prompts `zsar_cli.prompts` and
`zsar_cli.backends.hf_lvlm` build and the loss on the answer token: yes/no presence, ZEAL frame
prompts with the world descriptions' start (white rim) / end (outline) questions, anomaly
questions, lettered multiple choice among 2-12 labels, and presence over 2-16 frames in one prompt
(whole frames, or a few tokens per frame laid out as the Self-ReS final pass does). Each label
phrase is one token (`build_tokenizer`). Frames come from a pre-rendered pool, flipped at random.

Prints presence / 16-frame presence / start-end (phase) / anomaly ROC-AUC and multiple-choice
accuracy measured through `hf_lvlm.load_hf_lvlm(...)`, and writes BUILD.json and the prompt
contract (prompt_contract.json: the prompt format trained on, `zsar_cli.backends.contract`) next
to the model.

    python scripts/build_world_lvlm_fastvlm.py --out build/wl-base     # from scratch, ~35 min
    python scripts/build_world_lvlm_fastvlm.py --init build/wl-base ... # continue training

The shipped model is a from-scratch build and five continuations: `scripts/build_world_lvlm.sh`
(one token per lettered option line from the third step on, see `option_tokens`).

Note: transformers re-initialises timm towers with std 0.02, which `make_model` undoes.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zsar_cli.backends.contract import folder_chat_template, lvlm_contract, write_contract
from zsar_cli.backends.hf_lvlm import chat_prompt, single_token_ids
from zsar_cli.prompts import (
    DEFAULT_CHOICE_QUESTION,
    NO_SPELLINGS,
    OPTION_LETTERS,
    YES_SPELLINGS,
    ZEAL_FRAME_PROMPT,
    format_choice_prompt,
)
from zsar_cli.synthetic import (
    BACKGROUND_PHRASE,
    COLORS,
    LABELS,
    SHAPES,
    STYLES,
    WorldObject,
    object_mask,
    random_object,
    render_frame,
    world_descriptions,
)

IMAGE_SIDE = 64
GRID = 4  # resnet10t at output stride 16 on 64 px
PATCH = IMAGE_SIDE // GRID
N_TOKENS = GRID * GRID
MAX_OPTIONS = 12  # `classify --lvlm` and the tests offer all 12 labels
MAX_FRAMES = 16  # a Self-ReS reflection path / 16 linearly sampled frames

# ChatML, as Qwen2-based LLaVA models (FastVLM among them) use; images first in the user turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
# Variant: the images after the question in the user turn. Each image token can then attend to
# the question's words and decide locally whether it matches them; the answer position only has
# to find a matching token (image-first, the question words must search the image instead).
CHAT_TEMPLATE_IMAGE_LAST = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "{{ '\n<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
PHRASES = (*LABELS, BACKGROUND_PHRASE)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<unk>"]

PRESENCE_QUESTIONS = (
    "Is there {label} in this frame?",
    "Is there {label} in this image?",
    "Does this frame show {label}?",
    "Can you see {label}?",
    "Is {label} visible?",
    "Is {label} present in the frame?",
)
DESCRIPTIONS = {d["label"]: d for d in world_descriptions()}
ANOMALY_QUESTIONS = (
    "Is there any object in this frame?",
    "Is there anything unusual in this frame?",
    "Is something other than {background} visible?",
)
CHOICE_QUESTIONS = (
    "Which of these is in the frame?",
    "What does this frame show?",
    "Which object is in this video?",
    "What is shown?",
)
ATTRIBUTE_QUESTIONS = (
    "Is there something {color} in this frame?",
    "Is there a {shape} in this frame?",
)
KINDS = ("presence", "zeal", "anomaly", "choice", "attribute", "multi", "video_choice")
# The kinds before `video_choice` was added: the from-scratch tokenizer corpus draws from these,
# so a rebuild of the first step makes the shipped tokenizer again, and a 6-weight `--mix` (the
# earlier steps of build_world_lvlm.sh) means no video_choice.
BASE_KINDS = KINDS[:6]


def curriculum(progress: float) -> tuple[float, ...]:
    """Kind weights (in KINDS order) at a fraction of stage 2. Single attributes come first: a
    label question needs both, and mixed from the start the model settles on the answer prior
    and stops looking at the image."""
    if progress < 0.12:
        return (0.0, 0.0, 0.2, 0.0, 0.8, 0.0, 0.0)
    if progress < 0.35:
        return (0.25, 0.15, 0.05, 0.25, 0.2, 0.1, 0.0)
    return (0.12, 0.18, 0.03, 0.35, 0.04, 0.28, 0.0)


def fill(template: str, label: str) -> str:
    return template.format(label=label, background=BACKGROUND_PHRASE)


def zeal_prompt(label: str, which: str) -> str:
    return ZEAL_FRAME_PROMPT.format(label=label, question=DESCRIPTIONS[label][f"{which}_question"])


def jpeg_roundtrip(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
    return np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def random_size(rng: np.random.Generator) -> tuple[int, int]:
    """A frame size between 160x120 and 640x480 (aspect 4:3 to 1:1, sometimes portrait)."""
    width = int(rng.integers(160, 641))
    height = int(np.clip(width * rng.uniform(0.75, 1.0), 120, 480))
    return (width, height) if rng.random() < 0.85 else (height, width)


def random_styles(rng: np.random.Generator, n: int) -> list[str]:
    """Phase styles (`zsar_cli.synthetic.STYLES`): mostly plain, else an instance's start
    (white rim) or end (outline) look."""
    return [str(rng.choice(STYLES, p=(0.6, 0.2, 0.2))) for _ in range(n)]


def render_random(
    rng: np.random.Generator,
    objects_or_count: int | list[WorldObject],
    size=None,
    styles: list[str] | None = None,
) -> tuple[np.ndarray, list[WorldObject], int, int]:
    width, height = size or random_size(rng)
    if isinstance(objects_or_count, int):
        objects = [random_object(rng, width, height) for _ in range(objects_or_count)]
    else:
        objects = objects_or_count
    frame = render_frame(
        width,
        height,
        objects,
        background=int(rng.integers(90, 171)),
        noise_sigma=float(rng.uniform(0, 12)),
        rng=rng,
        styles=styles,
    )
    return jpeg_roundtrip(frame, rng), objects, width, height


def token_targets(
    objects: list[WorldObject], width: int, height: int, styles: list[str]
) -> tuple[list, list, list]:
    """Per image token (row-major over the 4x4 grid): colour, shape and phase-style class,
    0 = background.

    The processor squashes the frame to a square, so token (r, c) covers the same fraction of
    the frame; a token belongs to the top-most object covering >= 15% of its cell.
    """
    colors = [0] * N_TOKENS
    shapes = [0] * N_TOKENS
    looks = [0] * N_TOKENS
    for obj, style in zip(objects, styles, strict=True):
        mask = object_mask(obj.shape, obj.cx, obj.cy, obj.size * min(width, height), width, height)
        for r in range(GRID):
            for c in range(GRID):
                cell = mask[
                    r * height // GRID : (r + 1) * height // GRID,
                    c * width // GRID : (c + 1) * width // GRID,
                ]
                if cell.size and cell.mean() >= 0.15:
                    colors[r * GRID + c] = 1 + list(COLORS).index(obj.color)
                    shapes[r * GRID + c] = 1 + SHAPES.index(obj.shape)
                    looks[r * GRID + c] = 1 + STYLES.index(style)
    return colors, shapes, looks


class Pool:
    """Pre-rendered frames: processed pixels, labels present, per-token colour/shape targets."""

    def __init__(self, processor, rng: np.random.Generator, n: int) -> None:
        pixels, self.labels, colors, shapes, looks = [], [], [], [], []
        self.phased: list[set[tuple[str, str]]] = []  # (label, style) of the objects shown
        chunk = []
        for i in range(n):
            n_objects = int(rng.choice([0, 1, 2], p=[0.2, 0.65, 0.15]))
            styles = random_styles(rng, n_objects)
            frame, objects, width, height = render_random(rng, n_objects, styles=styles)
            chunk.append(frame)
            self.labels.append(sorted({o.label for o in objects}))
            self.phased.append({(o.label, st) for o, st in zip(objects, styles, strict=True)})
            c, s, look = token_targets(objects, width, height, styles)
            colors.append(c)
            shapes.append(s)
            looks.append(look)
            if len(chunk) == 256 or i == n - 1:
                out = processor.image_processor(chunk, return_tensors="pt")["pixel_values"]
                pixels.append(out.to(torch.float16))
                chunk = []
        self.pixels = torch.cat(pixels)
        self.colors = torch.tensor(colors)
        self.shapes = torch.tensor(shapes)
        self.looks = torch.tensor(looks)
        self.empty = [i for i, labels in enumerate(self.labels) if not labels]
        self.showing: dict[str, list[int]] = {label: [] for label in LABELS}
        # frames of exactly one object, per label: the frames of a trimmed clip
        self.alone: dict[str, list[int]] = {label: [] for label in LABELS}
        for i, labels in enumerate(self.labels):
            for label in labels:
                self.showing[label].append(i)
            if len(self.phased[i]) == 1 and len(labels) == 1:
                self.alone[labels[0]].append(i)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rng: np.random.Generator, idx: np.ndarray):
        """Pixels and token targets; half the frames mirrored left-right (every shape is
        symmetric about its vertical axis, so labels are unchanged; the token grid flips)."""
        pixels = self.pixels[idx].float()
        colors = self.colors[idx].view(-1, GRID, GRID)
        shapes = self.shapes[idx].view(-1, GRID, GRID)
        looks = self.looks[idx].view(-1, GRID, GRID)
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        pixels[flip] = pixels[flip].flip(-1)
        colors[flip] = colors[flip].flip(-1)
        shapes[flip] = shapes[flip].flip(-1)
        looks[flip] = looks[flip].flip(-1)
        n = len(idx)
        return pixels, colors.reshape(n, -1), shapes.reshape(n, -1), looks.reshape(n, -1)


def near_label(rng: np.random.Generator, label: str) -> str:
    """A different label sharing the colour or the shape (the hard negatives)."""
    _, color, shape = label.split()
    if rng.random() < 0.5:
        other = [s for s in SHAPES if s != shape]
        return f"a {color} {other[int(rng.integers(len(other)))]}"
    other_c = [c for c in COLORS if c != color]
    return f"a {other_c[int(rng.integers(len(other_c)))]} {shape}"


def sample_question(
    rng: np.random.Generator,
    present: list[str],
    kind: str,
    phased: set[tuple[str, str]] | frozenset = frozenset(),
) -> tuple[str, str, tuple] | None:
    """(user text, answer, query) about a frame showing `present`; None if `kind` does not fit.

    Answers are "Yes", "No" or an option letter: the first token after the generation prompt.
    The query says what an image token must show to match the question (for `token_answers`).
    """
    if kind == "attribute":
        label = LABELS[int(rng.integers(len(LABELS)))]
        if present and rng.random() < 0.5:
            label = present[int(rng.integers(len(present)))]
        _, color, shape = label.split()
        if rng.random() < 0.5:
            q, truth = ATTRIBUTE_QUESTIONS[0], any(p.split()[1] == color for p in present)
        else:
            q, truth = ATTRIBUTE_QUESTIONS[1], any(p.split()[2] == shape for p in present)
        query = ("color", color) if q == ATTRIBUTE_QUESTIONS[0] else ("shape", shape)
        return q.format(color=color, shape=shape), "Yes" if truth else "No", query
    if kind == "anomaly":
        q = fill(ANOMALY_QUESTIONS[int(rng.integers(len(ANOMALY_QUESTIONS)))], LABELS[0])
        return q, "Yes" if present else "No", ("any",)
    if kind == "choice":
        if len(present) > 1:
            return None
        truth = present[0] if present else BACKGROUND_PHRASE
        n_opt = int(rng.integers(2, MAX_OPTIONS + 1))
        pool = [lab for lab in LABELS if lab != truth]
        if present and rng.random() < 0.5:
            # hard distractors first: labels sharing the colour or the shape
            near = [lab for lab in pool if set(lab.split()) & set(truth.split()[1:])]
            far = [lab for lab in pool if lab not in near]
            pool = [*rng.permutation(near).tolist(), *rng.permutation(far).tolist()]
        else:
            pool = rng.permutation(pool).tolist()
        if present and rng.random() < 0.2:
            pool.insert(int(rng.integers(0, 3)), BACKGROUND_PHRASE)
        options = [truth, *pool[: n_opt - 1]]
        rng.shuffle(options)
        question = CHOICE_QUESTIONS[int(rng.integers(len(CHOICE_QUESTIONS)))]
        answer = OPTION_LETTERS[options.index(truth)]
        return format_choice_prompt(question, options), answer, ("options", options)
    if kind == "zeal":
        return zeal_question(rng, present, phased)
    # presence: the present label half the time, else mostly a hard negative
    if present and rng.random() < 0.5:
        label = present[int(rng.integers(len(present)))]
    elif present and rng.random() < 0.6:
        label = near_label(rng, present[0])
    else:
        label = LABELS[int(rng.integers(len(LABELS)))]
    answer = "Yes" if label in present else "No"
    q = fill(PRESENCE_QUESTIONS[int(rng.integers(len(PRESENCE_QUESTIONS)))], label)
    return q, answer, ("label", label)


def zeal_question(
    rng: np.random.Generator, present: list[str], phased: set[tuple[str, str]] | frozenset
) -> tuple[str, str, tuple]:
    """ZEAL's frame prompt with the world's start (white rim) or end (outline) question: yes only
    for the asked label in the asked phase. Negatives are mostly the same label in the other
    phase or plain (the distinction that matters for localization), else other labels."""
    styled = sorted((lab, st) for lab, st in phased if st != "plain")
    which = "start" if rng.random() < 0.5 else "end"
    if styled and rng.random() < 0.7:
        label, style = styled[int(rng.integers(len(styled)))]
        if rng.random() < 0.65:
            which = "start" if style == "rim" else "end"
    elif present and rng.random() < 0.6:
        label = present[int(rng.integers(len(present)))]
    elif present:
        label = near_label(rng, present[0])
    else:
        label = LABELS[int(rng.integers(len(LABELS)))]
    want = "rim" if which == "start" else "outline"
    answer = "Yes" if (label, want) in phased else "No"
    return zeal_prompt(label, which), answer, ("phase", label, want)


def build_tokenizer(rng: np.random.Generator):
    """Byte-level BPE trained on the world's prompts, wrapped as a fast tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for _ in range(4000):
        present = [] if rng.random() < 0.2 else [LABELS[int(rng.integers(len(LABELS)))]]
        got = sample_question(rng, present, str(rng.choice(BASE_KINDS)))
        if got:
            corpus.append(f"user\n{got[0]}\nassistant\n{got[1]}")
    # Every yes/no spelling and option letter must be a single token (alone and after a space).
    corpus += [" ".join(YES_SPELLINGS + NO_SPELLINGS)] * 200
    corpus += [s.strip() for s in YES_SPELLINGS + NO_SPELLINGS] * 100
    corpus += [" ".join(f"{x} {x}." for x in OPTION_LETTERS[:12])] * 200
    corpus += list(OPTION_LETTERS[:12]) * 100
    corpus += ['Describe a red circle as JSON: {"description": "a round shape"}'] * 20
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        padding_side="left",
    )
    # Each label phrase (" a red circle", " an empty gray background") is one token, and so is
    # each option marker ("B."), as frequent strings are in real vocabularies: a 3-layer model
    # then matches a question's label against image tokens directly (with word-level tokens it
    # had to bind colour to shape across tokens). Single words keep their own tokens.
    fast.add_tokens([AddedToken(" " + p, normalized=False) for p in PHRASES])
    fast.add_tokens([AddedToken(f"{x}.", normalized=False) for x in OPTION_LETTERS[:MAX_OPTIONS]])
    fast.chat_template = CHAT_TEMPLATE
    for spellings in (("Yes", "No"), tuple(OPTION_LETTERS[:MAX_OPTIONS])):
        missing = set(spellings) - set(single_token_ids(fast, spellings))
        if missing:
            raise SystemExit(f"tokenizer: {sorted(missing)} are not single tokens")
    return fast


def option_tokens() -> list[str]:
    """One token per lettered option line ("B. a blue square"; the added-token matcher takes
    the longest match, so a choice prompt's option lines become one token each).

    Added by the `--option-lines` continuation of a built model. Why: with the letter and the
    label as two tokens, answering needs two hops that the 3-layer model did not learn on CPU
    (multiple choice stayed at chance through five 8000-step builds): copy "B." onto the label
    token, then match the image against the labels and read the copy. A toy of the same shape
    (3 layers, 128 wide, 2-12 options, image tokens equal to the label embeddings) was still at
    chance after 3000 steps; with one token per option line and each image token's option index
    supervised after layer 1 it reached 96% in 800 steps. In the world model that layer-1 probe
    stays near chance (its image tokens are ~14x the word embeddings' norm), but choice-heavy
    continuations with these tokens took choice from 19% to 61% (3000 steps) and 100% (4000
    more) over 2-12 options; with the two-token layout it had stayed at chance."""
    return [f"{x}. {p}" for x in OPTION_LETTERS[:MAX_OPTIONS] for p in PHRASES]


def add_option_tokens(model, tokenizer) -> None:
    """Add the option-line tokens to a built model: each starts as its marker's embedding plus
    its label's (the label part is what image tokens showing it resemble, the marker the letter);
    the output rows are drawn as `resize_token_embeddings` does (mean and covariance of the old)."""
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in option_tokens()])
    model.resize_token_embeddings(len(tokenizer))
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for text in option_tokens():
            marker, phrase = text.split(" ", 1)
            (option_id,) = tokenizer.encode(text, add_special_tokens=False)
            (marker_id,) = tokenizer.encode(marker, add_special_tokens=False)
            (label_id,) = tokenizer.encode(" " + phrase, add_special_tokens=False)
            weight[option_id] = (weight[marker_id] + weight[label_id]) / 2**0.5


def has_option_tokens(tokenizer) -> bool:
    return option_tokens()[0] in tokenizer.get_vocab()


def make_processor(tokenizer, template: str = CHAT_TEMPLATE):
    from transformers import CLIPImageProcessor, LlavaProcessor

    # Squash (no centre crop): a crop would cut objects off wide frames.
    image_processor = CLIPImageProcessor(
        size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        do_center_crop=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="full",
        chat_template=template,
    )


def make_model(tokenizer, layers: int):
    from transformers import FastVlmConfig, FastVlmForConditionalGeneration

    config = FastVlmConfig(
        vision_config={
            "model_type": "timm_wrapper",
            "architecture": "resnet10t",
            "hidden_size": 96,
            "do_pooling": False,
            "model_args": {"channels": [16, 32, 64, 96], "stem_width": 16, "output_stride": 16},
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "tie_word_embeddings": False,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=N_TOKENS,
        tie_word_embeddings=False,
    )
    model = FastVlmForConditionalGeneration(config)
    # transformers re-initialises every Linear/conv with std 0.02: fine for the language model,
    # but the projector then shrinks image tokens ~50x and the ResNet barely learns colour.
    # Use timm's own initialisation for the tower and PyTorch's default for the projector.
    import timm

    vision = config.vision_config
    reference = timm.create_model(
        vision.architecture, pretrained=False, num_classes=0, **vision.model_args
    )
    model.model.vision_tower.timm_model.load_state_dict(reference.state_dict())
    model.model.multi_modal_projector.linear_1.reset_parameters()
    model.model.multi_modal_projector.linear_2.reset_parameters()
    # Word embeddings at the image tokens' scale (unit variance, nn.Embedding's default): with
    # std 0.02 image tokens are ~50x larger in the residual stream than words, so whatever
    # attention brings them from the question is drowned, and question words cannot be matched.
    weight = model.get_input_embeddings().weight
    torch.nn.init.normal_(weight, std=1.0)
    # A label-phrase token starts as its colour and shape words together (what stage 1 pulls an
    # object's image tokens towards), the background phrase as " gray": the question's label
    # then already resembles the image tokens that show it.
    with torch.no_grad():
        for phrase in PHRASES:
            words = phrase.split()[1:]
            words = ["gray"] if phrase == BACKGROUND_PHRASE else words
            ids = word_ids(tokenizer, words)
            (label_id,) = tokenizer.encode(" " + phrase, add_special_tokens=False)
            weight[label_id] = weight[ids].sum(0) / len(ids) ** 0.5
    return model


def word_ids(tokenizer, words) -> list[int]:
    ids = []
    for w in words:
        enc = tokenizer.encode(" " + w, add_special_tokens=False)
        ids.append(enc[0])
    return ids


def pretrain_vision(model, tokenizer, pool: Pool, rng, steps: int, batch: int, lr: float) -> None:
    """Stage 1: the vision tower + projector learn each token's colour and shape.

    Heads on the projected tokens predict colour/shape classes; the tokens are also pulled
    towards the LM's embeddings of their words (" red" + " circle", " gray" for background), so
    a question about a label becomes matching word embeddings against image tokens.
    """
    hidden = model.config.text_config.hidden_size
    embed = model.get_input_embeddings().weight
    color_words = torch.tensor(word_ids(tokenizer, ("gray", *COLORS)))
    shape_words = torch.tensor(word_ids(tokenizer, ("gray", *SHAPES)))
    # phase styles: nothing for background / plain, the start and end questions' words else
    look_vectors = torch.zeros(1 + len(STYLES), embed.shape[1])
    look_vectors[1 + STYLES.index("rim")] = embed[word_ids(tokenizer, ["rim"])[0]].detach()
    look_vectors[1 + STYLES.index("outline")] = embed[word_ids(tokenizer, ["outline"])[0]].detach()
    color_head = torch.nn.Linear(hidden, 1 + len(COLORS))
    shape_head = torch.nn.Linear(hidden, 1 + len(SHAPES))
    look_head = torch.nn.Linear(hidden, 1 + len(STYLES))
    params = [
        *model.model.vision_tower.parameters(),
        *model.model.multi_modal_projector.parameters(),
        *color_head.parameters(),
        *shape_head.parameters(),
        *look_head.parameters(),
    ]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps, pct_start=0.1)
    running = None
    started = time.time()
    for step in range(steps):
        idx = rng.integers(0, len(pool), batch)
        pixels, color_t, shape_t, look_t = pool.batch(rng, idx)
        tokens = model.model.get_image_features(pixel_values=pixels).pooler_output
        color_logits, shape_logits = color_head(tokens), shape_head(tokens)
        loss = F.cross_entropy(color_logits.flatten(0, 1), color_t.flatten())
        loss = loss + F.cross_entropy(shape_logits.flatten(0, 1), shape_t.flatten())
        loss = loss + F.cross_entropy(look_head(tokens).flatten(0, 1), look_t.flatten())
        with torch.no_grad():
            target = (
                embed[color_words][color_t] + embed[shape_words][shape_t] + look_vectors[look_t]
            )
            target = target / embed.std()  # the direction matters; RMSNorm removes the scale
        loss = loss + 0.5 * F.mse_loss(tokens, target)
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            obj = shape_t > 0
            acc_c = (color_logits.argmax(-1)[obj] == color_t[obj]).float().mean().item()
            acc_s = (shape_logits.argmax(-1)[obj] == shape_t[obj]).float().mean().item()
            print(
                f"vision {step:4d}  loss {running:.3f}  object-token colour {acc_c:.2f} "
                f"shape {acc_s:.2f}  {time.time() - started:5.0f}s",
                flush=True,
            )


def token_answers(
    query: tuple, colors: torch.Tensor, shapes: torch.Tensor, looks: torch.Tensor
) -> torch.Tensor:
    """Per image token, its own answer to the question: 1 = it matches (yes/no questions), or
    1 + the index of the option naming its object (choice), 0 = no match / background."""

    def code(label: str) -> tuple[int, int]:
        _, color, shape = label.split()
        return 1 + list(COLORS).index(color), 1 + SHAPES.index(shape)

    kind = query[0]
    if kind == "any":
        return (shapes > 0).long()
    if kind == "color":
        return (colors == 1 + list(COLORS).index(query[1])).long()
    if kind == "shape":
        return (shapes == 1 + SHAPES.index(query[1])).long()
    if kind == "label":
        c, s = code(query[1])
        return ((colors == c) & (shapes == s)).long()
    if kind == "phase":
        c, s = code(query[1])
        return ((colors == c) & (shapes == s) & (looks == 1 + STYLES.index(query[2]))).long()
    out = torch.zeros_like(colors)
    for j, option in enumerate(query[1]):
        if option != BACKGROUND_PHRASE:
            c, s = code(option)
            out[(colors == c) & (shapes == s)] = 1 + j
    return out


def sample_multi(rng: np.random.Generator, pool: Pool) -> tuple[list[int], str, str, tuple]:
    """Frames of one prompt (2-16, mostly empty background) and a presence or any-object question.

    As on a Self-ReS reflection path or 16 linearly sampled frames of a long clip: the object, if
    any, shows on one or two of the frames; distractor frames show other (often similar) labels.
    """
    count = int(rng.integers(2, MAX_FRAMES + 1))
    label = LABELS[int(rng.integers(len(LABELS)))]
    frames = [pool.empty[int(rng.integers(len(pool.empty)))] for _ in range(count)]
    for slot in rng.permutation(count)[: int(rng.integers(0, 3))]:
        other = near_label(rng, label) if rng.random() < 0.6 else LABELS[int(rng.integers(12))]
        frames[slot] = pool.showing[other][int(rng.integers(len(pool.showing[other])))]
    if rng.random() < 0.5:
        for slot in rng.permutation(count)[: int(rng.integers(1, 3))]:
            frames[slot] = pool.showing[label][int(rng.integers(len(pool.showing[label])))]
    present = sorted({lab for f in frames for lab in pool.labels[f]})
    if rng.random() < 0.15:
        text, answer, query = sample_question(rng, present, "anomaly")  # type: ignore[misc]
        return frames, text, answer, query
    question = PRESENCE_QUESTIONS[int(rng.integers(len(PRESENCE_QUESTIONS)))]
    return frames, fill(question, label), "Yes" if label in present else "No", ("label", label)


def shortlist(rng: np.random.Generator, truth: str, n_opt: int) -> list[str]:
    """`n_opt` options with `truth` among them in random order, as CLIP's shortlist would be:
    mostly the labels sharing its colour or shape first (what CLIP confuses), else any labels."""
    others = [lab for lab in LABELS if lab != truth]
    if rng.random() < 0.7:
        near = [lab for lab in others if set(lab.split()[1:]) & set(truth.split()[1:])]
        far = [lab for lab in others if lab not in near]
        others = [*rng.permutation(near).tolist(), *rng.permutation(far).tolist()]
    else:
        others = rng.permutation(others).tolist()
    options = [truth, *others[: n_opt - 1]]
    rng.shuffle(options)
    return options


def sample_video_choice(rng: np.random.Generator, pool: Pool) -> tuple[list[int], str, str, tuple]:
    """The prompt `classify --lvlm` sends: 4-16 frames of one clip (one object, the same label
    on every frame; sometimes a few background frames, as in a clip cut from a longer video),
    the question and 2-12 lettered options (5, the default --shortlist, most often) in random
    order, so that every rotation --option-order circular asks is learnt alike."""
    count = int(rng.integers(4, MAX_FRAMES + 1))
    truth = LABELS[int(rng.integers(len(LABELS)))]
    alone = pool.alone[truth]
    frames = [alone[int(rng.integers(len(alone)))] for _ in range(count)]
    if rng.random() < 0.2:
        for slot in rng.permutation(count)[: int(rng.integers(1, count // 2 + 1))]:
            frames[slot] = pool.empty[int(rng.integers(len(pool.empty)))]
    n_opt = 5 if rng.random() < 0.4 else int(rng.integers(2, MAX_OPTIONS + 1))
    options = shortlist(rng, truth, n_opt)
    questions = (DEFAULT_CHOICE_QUESTION, *CHOICE_QUESTIONS)
    question = questions[int(rng.integers(len(questions)))]
    answer = OPTION_LETTERS[options.index(truth)]
    return frames, format_choice_prompt(question, options), answer, ("options", options)


def kept_subset(rng: np.random.Generator, targets: list[torch.Tensor]) -> list[np.ndarray]:
    """Per frame, the image tokens kept by a simulated Self-ReS selection: 8-32 tokens in all,
    biased towards tokens that answer the question (as a working selection is); order kept."""
    total = sum(len(t) for t in targets)
    budget = min(total, int(rng.integers(8, 33)))
    flat = torch.cat(targets).numpy() > 0
    weight = np.where(flat, rng.choice([1.0, 20.0]), 1.0)
    chosen = rng.choice(total, size=budget, replace=False, p=weight / weight.sum())
    mask = np.zeros(total, bool)
    mask[chosen] = True
    out, offset = [], 0
    for t in targets:
        out.append(np.flatnonzero(mask[offset : offset + len(t)]))
        offset += len(t)
    return out


# Kind weights of `--init` runs (continued training of a built model): the single-frame label
# questions get the share the from-scratch curriculum gives to choice and phases.
FINETUNE_MIX = (0.32, 0.18, 0.04, 0.1, 0.1, 0.26, 0.0)
CHOICE_KINDS = ("choice", "video_choice")  # answered with an option letter


def make_batch(
    processor,
    pool: Pool,
    rng: np.random.Generator,
    size: int,
    progress: float,
    mix: tuple[float, ...] | None = None,
):
    """One question kind per batch (similar prompt lengths pad little).

    Returns the kind, the batch's image-token answers (flat, in sequence order) and the model
    inputs with the image tokens already in `inputs_embeds` — built here rather than by the
    model so that multi-frame prompts can keep a subset of each frame's tokens, as the Self-ReS
    final pass does (`zsar_cli.stages.self_res.final_inputs`).
    """
    kind = str(rng.choice(KINDS, p=mix or curriculum(progress)))
    samples = []  # (frame pool indices, user text, answer, query)
    if kind in ("multi", "video_choice"):
        # sparse: a few tokens of each frame, as the Self-ReS final pass (--self-res) asks
        sparse = rng.random() < (0.5 if kind == "multi" else 0.3)
        size = max(2, size // (4 if sparse else 6))
        sample = sample_multi if kind == "multi" else sample_video_choice
        while len(samples) < size:
            samples.append(sample(rng, pool))
    else:
        sparse = False
        while len(samples) < size:
            i = int(rng.integers(len(pool)))
            got = sample_question(rng, pool.labels[i], kind, pool.phased[i])
            if got is not None:
                samples.append(([i], *got))
    flat_idx = np.array([f for frames, *_ in samples for f in frames])
    pixels, colors, shapes, looks = pool.batch(rng, flat_idx)
    texts, keeps, token_t = [], [], []
    row = 0
    for frames, text, answer, query in samples:
        targets = [
            token_answers(query, colors[row + j], shapes[row + j], looks[row + j])
            for j in range(len(frames))
        ]
        keep = kept_subset(rng, targets) if sparse else [np.arange(N_TOKENS)] * len(frames)
        if sparse and query[0] in ("label", "any"):
            # what the final pass sees decides the answer: yes only if a kept token shows it
            shown = any(bool(t[k].any()) for t, k in zip(targets, keep, strict=True))
            answer = "Yes" if shown else "No"
        parts = chat_prompt(processor, len(frames), text).split("<image>")
        slots = ("<image>" * len(k) + p for k, p in zip(keep, parts[1:], strict=True))
        texts.append(parts[0] + "".join(slots))
        texts[-1] += answer
        keeps.extend(row * N_TOKENS + j * N_TOKENS + torch.as_tensor(k) for j, k in enumerate(keep))
        token_t.extend(t[k] for t, k in zip(targets, keep, strict=True))
        row += len(frames)
    enc = processor.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    mask = enc["attention_mask"]
    return (
        kind,
        torch.cat(token_t),
        {
            "input_ids": enc["input_ids"],
            "attention_mask": mask,
            "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
            "pixel_values": pixels,
            "keep": torch.cat(keeps),
        },
    )


def embed_batch(model, inputs: dict) -> dict:
    """inputs_embeds with the kept image tokens (projected tower outputs) in the image slots."""
    ids = inputs["input_ids"]
    embeds = model.get_input_embeddings()(ids)
    tokens = model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    image_pos = ids == model.config.image_token_id
    embeds = embeds.masked_scatter(
        image_pos.unsqueeze(-1), tokens.flatten(0, 1)[inputs["keep"]].to(embeds.dtype)
    )
    return {
        "inputs_embeds": embeds,
        "attention_mask": inputs["attention_mask"],
        "position_ids": inputs["position_ids"],
    }


def train_lm(
    model,
    processor,
    pool: Pool,
    rng,
    steps: int,
    batch: int,
    lr: float,
    aux: float,
    mix: tuple[float, ...] | None = None,
) -> None:
    """Stage 2: everything, loss on the answer token (the last token under left padding).

    With `aux` > 0 (images after the question), each image token's hidden state after the
    second-to-last layer also predicts its own answer (`token_answers`) through temporary heads:
    dense supervision for matching a token against the question's words, so the last layer only
    has to gather the matching tokens' answers at the answer position. In choice prompts, with
    option-line tokens the image tokens predict their option's index already after the first
    layer (one hop to the option line naming what they show); without, each option's label
    token predicts its own option index after the first layer (the copy of "B." onto
    " a blue square" that the image tokens' match then reads).
    """
    hidden = model.config.text_config.hidden_size
    match_head = torch.nn.Linear(hidden, 2)
    option_head = torch.nn.Linear(hidden, 1 + MAX_OPTIONS)
    letter_head = torch.nn.Linear(hidden, MAX_OPTIONS + 1)
    option_lines = has_option_tokens(processor.tokenizer)
    phrase_ids = torch.tensor([processor.tokenizer.convert_tokens_to_ids(" " + p) for p in PHRASES])
    vision = {id(p) for p in model.model.vision_tower.parameters()}
    optim = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if id(p) in vision], "lr": lr / 3},
            {"params": [p for p in model.parameters() if id(p) not in vision], "lr": lr},
            {
                "params": [
                    *match_head.parameters(),
                    *option_head.parameters(),
                    *letter_head.parameters(),
                ],
                "lr": lr,
            },
        ],
        weight_decay=0.01,
    )
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    image_token_id = model.config.image_token_id
    layer = model.config.text_config.num_hidden_layers - 1
    running: dict[str, float] = {}
    right: dict[str, float] = {}
    started = time.time()
    for step in range(steps):
        kind, token_t, inputs = make_batch(processor, pool, rng, batch, step / steps, mix)
        targets = inputs["input_ids"][:, -1].clone()
        out = model(
            **embed_batch(model, inputs),
            logits_to_keep=2,
            use_cache=False,
            output_hidden_states=aux > 0,
        )
        loss = F.cross_entropy(out.logits[:, 0], targets)
        if aux > 0:
            image_pos = inputs["input_ids"] == image_token_id
            if kind in CHOICE_KINDS and option_lines:
                logits = option_head(out.hidden_states[1][image_pos])
            else:
                head = option_head if kind in CHOICE_KINDS else match_head
                logits = head(out.hidden_states[layer][image_pos])
            loss = loss + aux * F.cross_entropy(logits, token_t)
        if aux > 0 and kind in CHOICE_KINDS and not option_lines:
            labels_at = torch.isin(inputs["input_ids"], phrase_ids)
            index = labels_at.long().cumsum(-1) - 1  # k-th label token = option k
            states = out.hidden_states[1][labels_at]
            loss = loss + aux * F.cross_entropy(letter_head(states), index[labels_at])
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        prev = running.get(kind)
        running[kind] = loss.item() if prev is None else 0.9 * prev + 0.1 * loss.item()
        acc = (out.logits[:, 0].argmax(-1) == targets).float().mean().item()
        right[kind] = acc if kind not in right else 0.9 * right[kind] + 0.1 * acc
        if step % 50 == 0 or step == steps - 1:
            losses = "  ".join(f"{k} {v:.3f}/{right[k]:.2f}" for k, v in sorted(running.items()))
            print(f"step {step:5d}  {losses}  {time.time() - started:5.0f}s", flush=True)


def evaluate(
    model_dir: Path,
    seed: int,
    n_presence: int = 240,
    n_choice: int = 220,
    n_multi: int = 96,
    n_video: int = 96,
):
    """Through the real backend, on fresh frames of random sizes.

    Presence (balanced): half the frames show the asked label (some with a second object),
    half do not (another label — often sharing colour or shape — or an empty frame); objects in
    any phase style. Phase: the ZEAL start/end prompt about a shown label, yes only when it is
    in that phase (rim = start, outline = end). Choice: one object, 2-12 label options. Also
    the anomaly question's AUC (object vs empty frame), 16-frame presence and 16-frame choice
    (`video_choice_accuracy`).
    """
    from sklearn.metrics import roc_auc_score

    from zsar_cli.backends.hf_lvlm import load_hf_lvlm

    lvlm = load_hf_lvlm(str(model_dir), device="cpu", dtype="float32", batch_size=32)
    rng = np.random.default_rng(seed)
    images, prompts, truth, has_object = [], [], [], []
    for i in range(n_presence):
        label = LABELS[i % len(LABELS)]
        present = i % 2 == 0
        width, height = random_size(rng)
        if present:
            objects = [random_object(rng, width, height, label=label)]
            if rng.random() < 0.2:
                objects.append(random_object(rng, width, height))
        elif rng.random() < 0.25:
            objects = []
        else:
            other = near_label(rng, label) if rng.random() < 0.6 else label
            while other == label:
                other = LABELS[int(rng.integers(len(LABELS)))]
            objects = [random_object(rng, width, height, label=other)]
        styles = random_styles(rng, len(objects))
        frame, objects, _, _ = render_random(rng, objects, (width, height), styles)
        images.append([frame])
        prompts.append(fill(PRESENCE_QUESTIONS[0], label))
        truth.append(label in {o.label for o in objects})
        has_object.append(bool(objects))
    scores = lvlm.yes_no(images, prompts)
    auc = float(roc_auc_score(truth, scores.p_yes))
    phase_images, phase_prompts, phase_truth = [], [], []
    for i in range(n_presence):
        label = LABELS[i % len(LABELS)]
        width, height = random_size(rng)
        style = STYLES[i % 3]
        obj = random_object(rng, width, height, label=label)
        phase_images.append([render_random(rng, [obj], (width, height), [style])[0]])
        which = "start" if (i // 3) % 2 == 0 else "end"
        phase_prompts.append(zeal_prompt(label, which))
        phase_truth.append(style == ("rim" if which == "start" else "outline"))
    phase_p = lvlm.yes_no(phase_images, phase_prompts).p_yes
    phase_auc = float(roc_auc_score(phase_truth, phase_p))
    anomaly_auc = float(
        roc_auc_score(has_object, lvlm.yes_no(images, [ANOMALY_QUESTIONS[0]] * len(images)).p_yes)
    )
    # 16-frame prompts, the asked label on one frame or none (the rest mostly empty)
    multi_truth, multi_images, multi_prompts = [], [], []
    for i in range(n_multi):
        label = LABELS[i % len(LABELS)]
        width, height = random_size(rng)
        frames = []
        for j in range(MAX_FRAMES):
            if j == 0 and i % 2 == 0:
                objects = [random_object(rng, width, height, label=label)]
            elif rng.random() < 0.1:
                objects = [random_object(rng, width, height, label=near_label(rng, label))]
            else:
                objects = []
            frames.append(render_random(rng, objects, (width, height))[0])
        order = rng.permutation(MAX_FRAMES)
        multi_images.append([frames[k] for k in order])
        multi_prompts.append(fill(PRESENCE_QUESTIONS[0], label))
        multi_truth.append(i % 2 == 0)
    multi_auc = float(roc_auc_score(multi_truth, lvlm.yes_no(multi_images, multi_prompts).p_yes))
    correct = 0
    for i in range(n_choice):
        width, height = random_size(rng)
        frame, objects, _, _ = render_random(rng, 1, (width, height))
        truth_label = objects[0].label
        n_opt = 2 + i % (MAX_OPTIONS - 1)
        others = [lab for lab in rng.permutation(LABELS).tolist() if lab != truth_label]
        options = [truth_label, *others[: n_opt - 1]]
        rng.shuffle(options)
        probs = lvlm.choice([frame], CHOICE_QUESTIONS[i % len(CHOICE_QUESTIONS)], options)
        correct += options[int(np.argmax(probs))] == truth_label
    video_acc = video_choice_accuracy(lvlm, rng, n_video)
    return auc, correct / n_choice, anomaly_auc, multi_auc, phase_auc, video_acc


def video_choice_accuracy(lvlm, rng: np.random.Generator, n: int) -> float:
    """`classify --lvlm`'s question on clips: 16 frames of one moving object (as linearly
    sampled from a trimmed world clip, 2-10 s), 5 options in random order, mostly the labels
    sharing its colour or shape (as CLIP shortlists them)."""
    correct = 0
    for i in range(n):
        width, height = random_size(rng)
        obj = random_object(rng, width, height, label=LABELS[i % len(LABELS)])
        seconds = float(rng.uniform(2, 10))
        frames = []
        for t in np.linspace(0, seconds, MAX_FRAMES):
            cx, cy = obj.at(float(t), width, height)
            moved = WorldObject(obj.shape, obj.color, obj.size, cx, cy)
            frames.append(render_random(rng, [moved], (width, height))[0])
        options = shortlist(rng, obj.label, 5)
        probs = lvlm.choice(frames, DEFAULT_CHOICE_QUESTION, options)
        correct += options[int(np.argmax(probs))] == obj.label
    return correct / n


def parse_mix(text: str) -> tuple[float, ...]:
    weights = tuple(float(x) for x in text.split(","))
    if len(weights) == len(BASE_KINDS):  # the steps written before video_choice existed
        weights = (*weights, 0.0)
    if len(weights) != len(KINDS) or min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"{len(KINDS)} weights >= 0 summing to 1, in KINDS order")
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pool", type=int, default=4000, help="pre-rendered training frames")
    parser.add_argument("--vision-steps", type=int, default=600)
    parser.add_argument("--vision-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--image-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="images after the question (the shipped model)",
    )
    parser.add_argument("--aux", type=float, default=1.0, help="token-answer loss (image-last)")
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=FINETUNE_MIX,
        help=f"kind weights for --init runs, in the order {','.join(KINDS)}",
    )
    parser.add_argument(
        "--option-lines",
        action="store_true",
        help="with --init: add one token per lettered option line (`option_tokens`)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="continue training this built model (no stage 1; FINETUNE_MIX of question kinds)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()

    if args.init is not None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(args.init)
        model = AutoModelForImageTextToText.from_pretrained(args.init)
        if args.option_lines and not has_option_tokens(processor.tokenizer):
            add_option_tokens(model, processor.tokenizer)
    else:
        template = CHAT_TEMPLATE_IMAGE_LAST if args.image_last else CHAT_TEMPLATE
        processor = make_processor(build_tokenizer(rng), template)
        model = make_model(processor.tokenizer, args.layers)
    tokenizer = processor.tokenizer
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tokenizer)}, params {n_params / 1e6:.2f} M, image tokens {N_TOKENS}")
    pool = Pool(processor, rng, args.pool)
    print(f"pool of {len(pool)} frames rendered in {time.time() - started:.0f}s", flush=True)

    aux = args.aux if args.image_last else 0.0
    if args.init is None:
        pretrain_vision(model, tokenizer, pool, rng, args.vision_steps, args.vision_batch, 3e-3)
        train_lm(model, processor, pool, rng, args.steps, args.batch, args.lr, aux)
    else:
        train_lm(model, processor, pool, rng, args.steps, args.batch, args.lr, aux, args.mix)
    train_s = time.time() - started

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    model.eval()
    model.save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)
    # What zsar must keep asking this model; it refuses to load it once its prompts change.
    contract = lvlm_contract(folder_chat_template(args.out), MAX_OPTIONS)
    write_contract(args.out, "world-lvlm", "scripts/build_world_lvlm.sh", contract)
    auc, acc, anomaly_auc, multi_auc, phase_auc, video_acc = evaluate(
        args.out, seed=args.seed + 1000
    )
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    build = {
        "script": "scripts/build_world_lvlm_fastvlm.py",
        "init": None if args.init is None else json.loads((args.init / "BUILD.json").read_text()),
        "seed": args.seed,
        "pool": args.pool,
        "vision_steps": args.vision_steps,
        "steps": args.steps,
        "batch": args.batch,
        "layers": args.layers,
        "lr": args.lr,
        "threads": args.threads,
        "image_last": args.image_last,
        "aux": aux,
        "mix": None if args.init is None else list(args.mix),
        "option_lines": has_option_tokens(tokenizer),
        "train_seconds": round(train_s),
        "auc": round(auc, 4),
        "choice_acc": round(acc, 4),
        "anomaly_auc": round(anomaly_auc, 4),
        "multi_frame_auc": round(multi_auc, 4),
        "phase_auc": round(phase_auc, 4),
        "video_choice_acc": round(video_acc, 4),
    }
    (args.out / "BUILD.json").write_text(json.dumps(build, indent=2) + "\n")
    print(f"saved {args.out} ({size:.1f} MB); trained in {train_s:.0f}s")
    print(f"p_yes ROC-AUC on fresh frames: {auc:.3f} (target >= 0.95)")
    print(f"multiple-choice accuracy on fresh frames: {acc:.1%} (target >= 90%)")
    print(f"anomaly-question ROC-AUC: {anomaly_auc:.3f}")
    print(f"16-frame presence ROC-AUC (label on one frame): {multi_auc:.3f}")
    print(f"ZEAL start/end (phase) ROC-AUC: {phase_auc:.3f}")
    print(f"16-frame multiple-choice accuracy (5 near options): {video_acc:.1%}")


if __name__ == "__main__":
    main()
