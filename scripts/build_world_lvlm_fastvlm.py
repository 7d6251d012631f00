"""Build a tiny FastVLM-family world LVLM (a timm ResNet vision tower + a Qwen2 language model).

Input: frames rendered by `zsar_cli.synthetic` (fixed seeds; random sizes 160x120..640x480,
backgrounds 90..170, noise 0..12, JPEG round trip, 0-2 objects). Output: a transformers
`fast_vlm` model folder (FastVlmForConditionalGeneration: a `timm_wrapper` resnet10t created
offline with pretrained=False, output stride 16 on 64-px inputs = a 4x4 grid of 16 spatial image
tokens, a LLaVA projector and a 3-layer Qwen2), a locally trained byte-level BPE tokenizer with a
ChatML chat template, and a LlavaProcessor + CLIPImageProcessor (squash-resize to 64x64), all
loadable with `hf:/dir` through AutoProcessor + AutoModelForImageTextToText like a real model.

Training: (1) the vision tower + projector learn each image token's colour and shape (dense
targets from the rendered masks, tokens also pulled towards the word embeddings of their colour
and shape); (2) the whole model learns yes/no presence questions, ZEAL frame prompts with the
world descriptions' start/end questions, anomaly questions and lettered multiple choice among
2-6 labels, with the prompts `zsar_cli.backends.hf_lvlm` builds; loss on the answer token only.
Frames come from a pre-rendered pool (rendering dominates otherwise), flipped at random.

Prints p_yes ROC-AUC (presence, balanced, fresh frames) and multiple-choice accuracy measured
through `hf_lvlm.load_hf_lvlm(...).yes_no / .choice`, and writes BUILD.json next to the model.

    python scripts/build_world_lvlm_fastvlm.py --out /tmp/wlf1 [--steps N] [--threads 1]

Status (experimental, not shipped): the ResNet tower learns colour and shape per token (97%/96%),
anomaly AUC 1.0, but label binding is not learned in 2000 CPU steps (best: presence ROC-AUC 0.74,
choice 31% with --image-last). Kept as the more promising route for the world LVLM (issue 5);
note transformers re-initialises timm towers with std 0.02, which `make_model` undoes.
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

from zsar_cli.backends.hf_lvlm import (
    NO_SPELLINGS,
    OPTION_LETTERS,
    YES_SPELLINGS,
    chat_prompt,
    format_choice_prompt,
    single_token_ids,
)
from zsar_cli.synthetic import (
    BACKGROUND_PHRASE,
    COLORS,
    LABELS,
    SHAPES,
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
MAX_OPTIONS = 6
ZEAL_FRAME_PROMPT = "This is a frame from a video of {label}. {question} Only answer yes or no."

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
KINDS = ("presence", "zeal", "anomaly", "choice", "attribute")


def curriculum(progress: float) -> tuple[float, ...]:
    """Kind weights (in KINDS order) at a fraction of stage 2. Single attributes come first: a
    label question needs both, and mixed from the start the model settles on the answer prior
    and stops looking at the image."""
    if progress < 0.15:
        return (0.0, 0.0, 0.2, 0.0, 0.8)
    if progress < 0.4:
        return (0.3, 0.2, 0.05, 0.15, 0.3)
    return (0.3, 0.2, 0.05, 0.35, 0.1)


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


def render_random(
    rng: np.random.Generator, objects_or_count: int | list[WorldObject], size=None
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
    )
    return jpeg_roundtrip(frame, rng), objects, width, height


def token_targets(objects: list[WorldObject], width: int, height: int) -> tuple[list, list]:
    """Per image token (row-major over the 4x4 grid): colour and shape class, 0 = background.

    The processor squashes the frame to a square, so token (r, c) covers the same fraction of
    the frame; a token belongs to the top-most object covering >= 15% of its cell.
    """
    colors = [0] * N_TOKENS
    shapes = [0] * N_TOKENS
    for obj in objects:
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
    return colors, shapes


class Pool:
    """Pre-rendered frames: processed pixels, labels present, per-token colour/shape targets."""

    def __init__(self, processor, rng: np.random.Generator, n: int) -> None:
        pixels, self.labels, colors, shapes = [], [], [], []
        chunk = []
        for i in range(n):
            n_objects = int(rng.choice([0, 1, 2], p=[0.2, 0.65, 0.15]))
            frame, objects, width, height = render_random(rng, n_objects)
            chunk.append(frame)
            self.labels.append(sorted({o.label for o in objects}))
            c, s = token_targets(objects, width, height)
            colors.append(c)
            shapes.append(s)
            if len(chunk) == 256 or i == n - 1:
                out = processor.image_processor(chunk, return_tensors="pt")["pixel_values"]
                pixels.append(out.to(torch.float16))
                chunk = []
        self.pixels = torch.cat(pixels)
        self.colors = torch.tensor(colors)
        self.shapes = torch.tensor(shapes)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rng: np.random.Generator, idx: np.ndarray):
        """Pixels and token targets; half the frames mirrored left-right (every shape is
        symmetric about its vertical axis, so labels are unchanged; the token grid flips)."""
        pixels = self.pixels[idx].float()
        colors = self.colors[idx].view(-1, GRID, GRID)
        shapes = self.shapes[idx].view(-1, GRID, GRID)
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        pixels[flip] = pixels[flip].flip(-1)
        colors[flip] = colors[flip].flip(-1)
        shapes[flip] = shapes[flip].flip(-1)
        return pixels, colors.reshape(len(idx), -1), shapes.reshape(len(idx), -1)


def near_label(rng: np.random.Generator, label: str) -> str:
    """A different label sharing the colour or the shape (the hard negatives)."""
    _, color, shape = label.split()
    if rng.random() < 0.5:
        other = [s for s in SHAPES if s != shape]
        return f"a {color} {other[int(rng.integers(len(other)))]}"
    other_c = [c for c in COLORS if c != color]
    return f"a {other_c[int(rng.integers(len(other_c)))]} {shape}"


def sample_question(
    rng: np.random.Generator, present: list[str], kind: str
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
    # presence / zeal: the present label half the time, else mostly a hard negative
    if present and rng.random() < 0.5:
        label = present[int(rng.integers(len(present)))]
    elif present and rng.random() < 0.6:
        label = near_label(rng, present[0])
    else:
        label = LABELS[int(rng.integers(len(LABELS)))]
    answer = "Yes" if label in present else "No"
    if kind == "presence":
        q = fill(PRESENCE_QUESTIONS[int(rng.integers(len(PRESENCE_QUESTIONS)))], label)
    else:
        q = zeal_prompt(label, "start" if rng.random() < 0.5 else "end")
    return q, answer, ("label", label)


def build_tokenizer(rng: np.random.Generator):
    """Byte-level BPE trained on the world's prompts, wrapped as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for _ in range(4000):
        present = [] if rng.random() < 0.2 else [LABELS[int(rng.integers(len(LABELS)))]]
        got = sample_question(rng, present, str(rng.choice(KINDS)))
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
    fast.chat_template = CHAT_TEMPLATE
    for spellings in (("Yes", "No"), tuple(OPTION_LETTERS[:MAX_OPTIONS])):
        missing = set(spellings) - set(single_token_ids(fast, spellings))
        if missing:
            raise SystemExit(f"tokenizer: {sorted(missing)} are not single tokens")
    return fast


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
    torch.nn.init.normal_(model.get_input_embeddings().weight, std=1.0)
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
    color_head = torch.nn.Linear(hidden, 1 + len(COLORS))
    shape_head = torch.nn.Linear(hidden, 1 + len(SHAPES))
    params = [
        *model.model.vision_tower.parameters(),
        *model.model.multi_modal_projector.parameters(),
        *color_head.parameters(),
        *shape_head.parameters(),
    ]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps, pct_start=0.1)
    running = None
    started = time.time()
    for step in range(steps):
        idx = rng.integers(0, len(pool), batch)
        pixels, color_t, shape_t = pool.batch(rng, idx)
        tokens = model.model.get_image_features(pixel_values=pixels).pooler_output
        color_logits, shape_logits = color_head(tokens), shape_head(tokens)
        loss = F.cross_entropy(color_logits.flatten(0, 1), color_t.flatten())
        loss = loss + F.cross_entropy(shape_logits.flatten(0, 1), shape_t.flatten())
        with torch.no_grad():
            target = embed[color_words][color_t] + embed[shape_words][shape_t]
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


def token_answers(query: tuple, colors: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
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
    out = torch.zeros_like(colors)
    for j, option in enumerate(query[1]):
        if option != BACKGROUND_PHRASE:
            c, s = code(option)
            out[(colors == c) & (shapes == s)] = 1 + j
    return out


def make_batch(processor, pool: Pool, rng: np.random.Generator, size: int, progress: float):
    """One question kind per batch (similar prompt lengths pad little)."""
    kind = str(rng.choice(KINDS, p=curriculum(progress)))
    idx, texts, queries = [], [], []
    image_text = "<image>" * N_TOKENS
    while len(idx) < size:
        i = int(rng.integers(len(pool)))
        got = sample_question(rng, pool.labels[i], kind)
        if got is None:
            continue
        idx.append(i)
        queries.append(got[2])
        prompt = chat_prompt(processor, 1, got[0]) + got[1]
        # what LlavaProcessor does: one <image> placeholder per image token
        texts.append(prompt.replace("<image>", image_text))
    enc = processor.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    pixels, colors, shapes = pool.batch(rng, np.array(idx))
    token_t = torch.stack(
        [token_answers(q, c, s) for q, c, s in zip(queries, colors, shapes, strict=True)]
    )
    mask = enc["attention_mask"]
    return (
        kind,
        token_t,
        {
            "input_ids": enc["input_ids"],
            "attention_mask": mask,
            "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
            "pixel_values": pixels,
        },
    )


def train_lm(
    model, processor, pool: Pool, rng, steps: int, batch: int, lr: float, aux: float
) -> None:
    """Stage 2: everything, loss on the answer token (the last token under left padding).

    With `aux` > 0 (images after the question), each image token's hidden state after the
    second-to-last layer also predicts its own answer (`token_answers`) through temporary heads:
    dense supervision for matching a token against the question's words, so the last layer only
    has to gather the matching tokens' answers at the answer position.
    """
    hidden = model.config.text_config.hidden_size
    match_head = torch.nn.Linear(hidden, 2)
    option_head = torch.nn.Linear(hidden, 1 + MAX_OPTIONS)
    vision = {id(p) for p in model.model.vision_tower.parameters()}
    optim = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if id(p) in vision], "lr": lr / 3},
            {"params": [p for p in model.parameters() if id(p) not in vision], "lr": lr},
            {"params": [*match_head.parameters(), *option_head.parameters()], "lr": lr},
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
    started = time.time()
    for step in range(steps):
        kind, token_t, inputs = make_batch(processor, pool, rng, batch, step / steps)
        targets = inputs["input_ids"][:, -1].clone()
        out = model(**inputs, logits_to_keep=2, use_cache=False, output_hidden_states=aux > 0)
        loss = F.cross_entropy(out.logits[:, 0], targets)
        if aux > 0:
            image_pos = inputs["input_ids"] == image_token_id
            states = out.hidden_states[layer][image_pos]
            head = option_head if kind == "choice" else match_head
            loss = loss + aux * F.cross_entropy(head(states), token_t.flatten())
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        prev = running.get(kind)
        running[kind] = loss.item() if prev is None else 0.9 * prev + 0.1 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in sorted(running.items()))
            print(f"step {step:5d}  {losses}  {time.time() - started:5.0f}s", flush=True)


def evaluate(model_dir: Path, seed: int, n_presence: int = 240, n_choice: int = 200):
    """Through the real backend, on fresh frames of random sizes.

    Presence (balanced): half the frames show the asked label (some with a second object),
    half do not (another label — often sharing colour or shape — or an empty frame); prompts
    alternate between plain presence and the ZEAL frame prompt (start and end questions).
    Choice: one object, 2-6 label options, sometimes the background phrase among them.
    Also the anomaly question's AUC (object vs empty frame).
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
        frame, objects, _, _ = render_random(rng, objects, (width, height))
        kind = i % 3
        if kind == 0:
            prompt = fill(PRESENCE_QUESTIONS[0], label)
        else:
            prompt = zeal_prompt(label, "start" if kind == 1 else "end")
        images.append([frame])
        prompts.append(prompt)
        truth.append(label in {o.label for o in objects})
        has_object.append(bool(objects))
    scores = lvlm.yes_no(images, prompts)
    auc = float(roc_auc_score(truth, scores.p_yes))
    anomaly_auc = float(
        roc_auc_score(has_object, lvlm.yes_no(images, [ANOMALY_QUESTIONS[0]] * len(images)).p_yes)
    )
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
    return auc, correct / n_choice, anomaly_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pool", type=int, default=4000, help="pre-rendered training frames")
    parser.add_argument("--vision-steps", type=int, default=600)
    parser.add_argument("--vision-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-last", action="store_true", help="images after the question")
    parser.add_argument("--aux", type=float, default=1.0, help="token-answer loss (image-last)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()

    template = CHAT_TEMPLATE_IMAGE_LAST if args.image_last else CHAT_TEMPLATE
    processor = make_processor(build_tokenizer(rng), template)
    tokenizer = processor.tokenizer
    model = make_model(tokenizer, args.layers)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tokenizer)}, params {n_params / 1e6:.2f} M, image tokens {N_TOKENS}")
    pool = Pool(processor, rng, args.pool)
    print(f"pool of {len(pool)} frames rendered in {time.time() - started:.0f}s", flush=True)

    pretrain_vision(model, tokenizer, pool, rng, args.vision_steps, args.vision_batch, 3e-3)
    aux = args.aux if args.image_last else 0.0
    train_lm(model, processor, pool, rng, args.steps, args.batch, args.lr, aux)
    train_s = time.time() - started

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    model.eval()
    model.save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)
    auc, acc, anomaly_auc = evaluate(args.out, seed=args.seed + 1000)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    build = {
        "script": "scripts/build_world_lvlm_fastvlm.py",
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
        "train_seconds": round(train_s),
        "auc": round(auc, 4),
        "choice_acc": round(acc, 4),
        "anomaly_auc": round(anomaly_auc, 4),
    }
    (args.out / "BUILD.json").write_text(json.dumps(build, indent=2) + "\n")
    print(f"saved {args.out} ({size:.1f} MB); trained in {train_s:.0f}s")
    print(f"p_yes ROC-AUC on fresh frames: {auc:.3f} (target >= 0.95)")
    print(f"multiple-choice accuracy on fresh frames: {acc:.1%} (target >= 90%)")
    print(f"anomaly-question ROC-AUC: {anomaly_auc:.3f}")


if __name__ == "__main__":
    main()
