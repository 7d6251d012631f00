"""Build the tiny world LVLM shipped as `builtin:world-lvlm` (zsar_cli/models/world-lvlm/).

Input: frames rendered by `zsar_cli.synthetic` (fixed seeds; JPEG round trip; several sizes,
backgrounds and noise levels). Output: a transformers Idefics3 (SmolVLM family) model folder —
config, safetensors weights, a locally trained byte-level BPE tokenizer with the Idefics3 chat
special tokens, a chat template and the processor — loadable with `hf:/dir` like a real model.

It is trained to answer yes/no questions about the world ("Is there a red circle in this
frame?", ZEAL's frame prompt with start/end questions, "Is there any object in this frame?") and
to pick the right label among lettered options, with the exact prompts the backend builds
(`zsar_cli.backends.hf_lvlm.chat_prompt` / `format_choice_prompt`). Loss is on the answer token
and the end-of-utterance token only. Prints the ROC-AUC of p_yes and the multiple-choice accuracy
on fresh frames at the end (targets ≥ 0.95 and ≥ 90%).

    python scripts/build_world_lvlm.py [--out DIR] [--steps N]
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

from zsar_cli.backends.hf_lvlm import (
    NO_SPELLINGS,
    OPTION_LETTERS,
    YES_SPELLINGS,
    chat_prompt,
    format_choice_prompt,
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
)

OUT = Path(__file__).resolve().parents[1] / "zsar_cli" / "models" / "world-lvlm"
IMAGE_SIDE = 64
PATCH = 8
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (IMAGE_SIDE // PATCH) ** 2 // SCALE_FACTOR**2
SIZES = ((160, 120), (320, 240), (96, 96), (128, 96), (240, 320), (200, 150), (64, 64))
ZEAL_FRAME_PROMPT = "This is a frame from a video of {label}. {question} Only answer yes or no."

# Chat template in the Idefics3/SmolVLM style: "<|im_start|>User:<image>text<end_of_utterance>\n"
# then "Assistant:" as the generation prompt.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ ' ' + message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ ' ' + part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SPECIAL_TOKENS = [
    "<pad>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    "<unk>",
    *[f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)],
]

PRESENCE_QUESTIONS = (
    "Is there {label} in this frame?",
    "Is there {label} in this image?",
    "Does this frame show {label}?",
    "Can you see {label}?",
    "Is {label} visible?",
    "Is {label} present in the frame?",
)
# Start/end questions in the style of the world descriptions: about the object appearing or
# leaving; in single frames the truth is whether the label's object is there.
START_END_QUESTIONS = (
    "Is {label} just appearing in the frame?",
    "Is {label} entering the frame?",
    "Does {label} appear in the scene?",
    "Is {label} still visible in the frame?",
    "Is {label} about to disappear?",
    "Is {label} leaving the frame?",
    "Is the {color} {shape} visible?",
    "Is the {shape} {color}?",
    "Is there a {color} object shaped like a {shape}?",
    "Is a {shape} of {color} color visible at the start?",
    "Is the {color} {shape} visible at the end?",
)
ANOMALY_QUESTIONS = (
    "Is there any object in this frame?",
    "Is there anything unusual in this frame?",
    "Is something other than {background} visible?",
    "Is this frame not just {background}?",
)
ATTRIBUTE_QUESTIONS = (
    "Is there something {color} in this frame?",
    "Is there a {shape} in this frame?",
    "Is the object {color}?",
    "Is the object a {shape}?",
)
EMPTY_QUESTIONS = ("Is this frame {background}?", "Does this frame show only {background}?")
CHOICE_QUESTIONS = (
    "Which of these is in the frame?",
    "What does this frame show?",
    "Which object is in this video?",
    "What is shown?",
)


def fill(template: str, label: str) -> str:
    color, shape = label.split()[1:]
    return template.format(label=label, color=color, shape=shape, background=BACKGROUND_PHRASE)


def jpeg_roundtrip(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def render_random(
    rng: np.random.Generator, n_objects: int, render: bool = True
) -> tuple[np.ndarray | None, list[WorldObject], int, int]:
    """A random frame (size, background, noise, objects), JPEG round-tripped, and its objects."""
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    objects = [random_object(rng, width, height, max_speed=0.0) for _ in range(n_objects)]
    if not render:
        return None, objects, width, height
    frame = render_frame(
        width,
        height,
        objects,
        background=int(rng.integers(90, 171)),
        noise_sigma=float(rng.uniform(0, 12)),
        rng=rng,
    )
    return jpeg_roundtrip(frame, rng), objects, width, height


def random_frame(
    rng: np.random.Generator, n_objects: int, render: bool = True
) -> tuple[np.ndarray | None, list[str]]:
    frame, objects, _, _ = render_random(rng, n_objects, render)
    return frame, [o.label for o in objects]


def token_targets(objects: list[WorldObject], width: int, height: int) -> tuple[list, list]:
    """Per image token (row-major over the token grid): color class and shape class, 0 = none.

    The processor squashes the frame to a square, so token (r, c) covers the same fraction of the
    original frame; a token belongs to the top-most object covering >= 15% of its area.
    """
    side = IMAGE_SIDE // PATCH // SCALE_FACTOR
    colors = [0] * side * side
    shapes = [0] * side * side
    for obj in objects:
        mask = object_mask(obj.shape, obj.cx, obj.cy, obj.size * min(width, height), width, height)
        for r in range(side):
            for c in range(side):
                cell = mask[
                    r * height // side : (r + 1) * height // side,
                    c * width // side : (c + 1) * width // side,
                ]
                if cell.size and cell.mean() >= 0.15:
                    colors[r * side + c] = 1 + list(COLORS).index(obj.color)
                    shapes[r * side + c] = 1 + SHAPES.index(obj.shape)
    return colors, shapes


def near_label(rng: np.random.Generator, label: str) -> str:
    """A different label sharing the color or the shape (the hard negatives)."""
    color, shape = label.split()[1:]
    if rng.random() < 0.5:
        other = [s for s in SHAPES if s != shape]
        return f"a {color} {other[int(rng.integers(len(other)))]}"
    other_c = [c for c in COLORS if c != color]
    return f"a {other_c[int(rng.integers(len(other_c)))]} {shape}"


KINDS = ("presence", "zeal", "anomaly", "attribute", "choice")
KIND_WEIGHTS = (0.28, 0.22, 0.10, 0.10, 0.30)


def curriculum(step: int) -> tuple[tuple[str, ...], tuple[float, ...], int]:
    """(kinds, weights, most options) at a training step. Questions answerable from the image
    alone come first (any object?), then single attributes, then labels and lettered options:
    mixed from the start, the model learns the answer prior and stops looking at the image."""
    if step < 150:
        return ("anomaly",), (1.0,), 2
    if step < 600:
        return ("anomaly", "attribute", "choice"), (0.3, 0.5, 0.2), 3
    if step < 1200:
        return (
            ("anomaly", "attribute", "presence", "zeal", "choice"),
            (0.1, 0.2, 0.25, 0.15, 0.3),
            6,
        )
    return KINDS, KIND_WEIGHTS, 12


def sample_example(
    rng: np.random.Generator, render: bool = True, kind: str | None = None, max_options: int = 12
) -> tuple[np.ndarray, str, str, list[str]]:
    """(frame, user text, answer) — answer is " Yes", " No" or " X" (an option letter).

    `render=False` skips drawing the frame (frame is None), for the tokenizer corpus."""
    if kind is None:
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
    n_objects = 0 if rng.random() < 0.25 else (1 if rng.random() < 0.9 else 2)
    if kind == "choice":
        n_objects = 1 if rng.random() < 0.85 else 0
    frame, present = random_frame(rng, n_objects, render)
    if kind == "anomaly":
        if present and rng.random() < 0.3:
            q = fill(EMPTY_QUESTIONS[int(rng.integers(len(EMPTY_QUESTIONS)))], LABELS[0])
            return frame, q, " No", present
        q = fill(ANOMALY_QUESTIONS[int(rng.integers(len(ANOMALY_QUESTIONS)))], LABELS[0])
        if not present and rng.random() < 0.3:
            q = fill(EMPTY_QUESTIONS[int(rng.integers(len(EMPTY_QUESTIONS)))], LABELS[0])
            return frame, q, " Yes", present
        return frame, q, " Yes" if present else " No", present
    if kind == "choice":
        truth = present[0] if present else BACKGROUND_PHRASE
        n_opt = int(rng.integers(2, max_options + 1))
        if max_options > 6 and rng.random() < 0.5:
            n_opt = int(rng.integers(2, 7))
        pool = [lab for lab in LABELS if lab != truth]
        if rng.random() < 0.3 or not present:
            pool.append(BACKGROUND_PHRASE) if truth != BACKGROUND_PHRASE else None
        options = [truth, *rng.choice(pool, size=min(n_opt - 1, len(pool)), replace=False).tolist()]
        rng.shuffle(options)
        question = CHOICE_QUESTIONS[int(rng.integers(len(CHOICE_QUESTIONS)))]
        letter = OPTION_LETTERS[options.index(truth)]
        return frame, format_choice_prompt(question, options), " " + letter, present
    if kind == "attribute":
        template = ATTRIBUTE_QUESTIONS[int(rng.integers(len(ATTRIBUTE_QUESTIONS)))]
        if present and rng.random() < 0.5:
            label = present[0]
        else:
            label = LABELS[int(rng.integers(len(LABELS)))]
        color, shape = label.split()[1:]
        if "{color}" in template:
            truth = any(p.split()[1] == color for p in present)
        else:
            truth = any(p.split()[2] == shape for p in present)
        return frame, fill(template, label), " Yes" if truth else " No", present
    # presence / zeal: ask about the present label half the time, else a (mostly hard) negative
    if present and rng.random() < 0.5:
        label = present[int(rng.integers(len(present)))]
    elif present and rng.random() < 0.6:
        label = near_label(rng, present[0])
    else:
        label = LABELS[int(rng.integers(len(LABELS)))]
    answer = " Yes" if label in present else " No"
    if kind == "presence":
        q = fill(PRESENCE_QUESTIONS[int(rng.integers(len(PRESENCE_QUESTIONS)))], label)
    else:
        question = fill(START_END_QUESTIONS[int(rng.integers(len(START_END_QUESTIONS)))], label)
        q = ZEAL_FRAME_PROMPT.format(label=label, question=question)
    return frame, q, answer, present


def build_tokenizer(processor_template: str, rng: np.random.Generator):
    """Byte-level BPE trained on the world's prompts, wrapped as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for _ in range(6000):
        _, text, answer, _ = sample_example(rng, render=False)
        corpus.append(f"User: {text}\nAssistant:{answer}")
    # Every yes/no spelling and option letter must exist as a single token.
    # (each also alone on a line, so the spellings without a leading space are merged too)
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
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
    )
    fast.chat_template = processor_template
    return fast


def make_processor(tokenizer):
    from transformers import Idefics3ImageProcessor, Idefics3Processor

    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIDE},
        max_image_size={"longest_edge": IMAGE_SIDE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )


def make_model(tokenizer):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    config = Idefics3Config(
        vision_config={
            "hidden_size": 96,
            "intermediate_size": 192,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIDE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "tie_word_embeddings": False,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=SCALE_FACTOR,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Idefics3ForConditionalGeneration(config)


def make_batch(processor, rng: np.random.Generator, size: int, step: int):
    # One question kind per batch: prompts of similar length pad little (choice prompts are long).
    kinds, weights, max_options = curriculum(step)
    kind = str(rng.choice(kinds, p=weights))
    frames, texts = [], []
    for _ in range(size):
        frame, text, answer, _ = sample_example(rng, kind=kind, max_options=max_options)
        frames.append([frame])
        texts.append(chat_prompt(processor, 1, text) + answer + "<end_of_utterance>")
    batch = processor(text=texts, images=frames, return_tensors="pt", padding=True)
    mask = batch["attention_mask"]
    batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    batch["kind"] = kind
    return batch


def pretrain_vision(model, processor, rng: np.random.Generator, steps: int, batch: int, lr: float):
    """Stage 1: teach the vision tower + connector to see the world, with temporary heads that
    predict each image token's color and shape (dense targets from the rendered masks).

    Without it the language model learns the answer prior and stops looking at the image: at
    initialisation a small object barely changes the image tokens.
    """
    inner = model.model
    hidden = model.config.text_config.hidden_size
    # Image tokens are also pulled towards the LM's embeddings of their words (" red" + " circle",
    # " gray" for background): attributes then dominate the tokens' directions, so asking about
    # an attribute becomes matching a word against image tokens.
    embed = model.get_input_embeddings().weight
    tok = processor.tokenizer
    word_ids = [tok.encode(" " + w, add_special_tokens=False)[0] for w in ("gray", *COLORS)]
    shape_ids = [tok.encode(" " + w, add_special_tokens=False)[0] for w in ("gray", *SHAPES)]
    color_head = torch.nn.Linear(hidden, 1 + len(COLORS))
    shape_head = torch.nn.Linear(hidden, 1 + len(SHAPES))
    params = [
        *inner.vision_model.parameters(),
        *inner.connector.parameters(),
        *color_head.parameters(),
        *shape_head.parameters(),
    ]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps, pct_start=0.1)
    running = None
    for step in range(steps):
        frames, color_t, shape_t = [], [], []
        for _ in range(batch):
            n_objects = int(rng.choice([0, 1, 2], p=[0.15, 0.7, 0.15]))
            frame, objects, width, height = render_random(rng, n_objects)
            frames.append([frame])
            colors, shapes = token_targets(objects, width, height)
            color_t.append(colors)
            shape_t.append(shapes)
        pixels = processor.image_processor(frames, return_tensors="pt")["pixel_values"]
        tokens = torch.stack(inner.get_image_features(pixel_values=pixels).pooler_output)
        color_t, shape_t = torch.tensor(color_t), torch.tensor(shape_t)
        color_logits, shape_logits = color_head(tokens), shape_head(tokens)
        loss = torch.nn.functional.cross_entropy(color_logits.flatten(0, 1), color_t.flatten())
        loss = loss + torch.nn.functional.cross_entropy(
            shape_logits.flatten(0, 1), shape_t.flatten()
        )
        with torch.no_grad():
            target = (
                embed[torch.tensor(word_ids)][color_t] + embed[torch.tensor(shape_ids)][shape_t]
            )
            target = target / embed.std()  # the direction matters; RMSNorm removes the scale
        loss = loss + torch.nn.functional.mse_loss(tokens, target)
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step % 25 == 0 or step == steps - 1:
            obj = shape_t > 0
            acc_c = (color_logits.argmax(-1)[obj] == color_t[obj]).float().mean().item()
            acc_s = (shape_logits.argmax(-1)[obj] == shape_t[obj]).float().mean().item()
            print(
                f"vision {step:4d}  loss {running:.4f}  object-token color {acc_c:.2f} "
                f"shape {acc_s:.2f}",
                flush=True,
            )


def scene_words(present: list[str]) -> str:
    """The objects of a frame in words ("red circle, blue square"), or "gray" when empty."""
    return ", ".join(label.split(" ", 1)[1] for label in present) if present else "gray"


def pretrain_matching(
    model, processor, rng: np.random.Generator, steps: int, batch: int, lr: float
) -> None:
    """Stage 2: text-only warm-up of the language model. The frame is replaced by its objects in
    words ("red circle. Is there something red in this frame?"), so the model first learns to
    match the asked words against words in context; image tokens were pulled towards the same
    word embeddings in stage 1, so the matching carries over to frames.
    """
    optim = torch.optim.AdamW(model.model.text_model.parameters(), lr=lr, weight_decay=0.01)
    optim.add_param_group({"params": list(model.lm_head.parameters())})
    running: dict[str, float] = {}
    for step in range(steps):
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        texts = []
        for _ in range(batch):
            _, text, answer, present = sample_example(rng, render=False, kind=kind)
            prompt = chat_prompt(processor, 0, f"{scene_words(present)}. {text}")
            texts.append(prompt + answer + "<end_of_utterance>")
        enc = processor.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        )
        position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        out = model(**enc, position_ids=position_ids, logits_to_keep=3, use_cache=False)
        logits = out.logits[:, :2]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), enc["input_ids"][:, -2:].reshape(-1)
        )
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        prev = running.get(kind)
        running[kind] = loss.item() if prev is None else 0.9 * prev + 0.1 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in sorted(running.items()))
            print(f"words {step:5d}  {losses}", flush=True)


def evaluate(model_dir: Path, seed: int, n: int = 240) -> tuple[float, float]:
    """ROC-AUC of p_yes (presence + ZEAL prompts) and choice accuracy, on fresh 320×240 frames."""
    from sklearn.metrics import roc_auc_score

    from zsar_cli.backends.hf_lvlm import load_hf_lvlm

    lvlm = load_hf_lvlm(str(model_dir), device="cpu", batch_size=32)
    rng = np.random.default_rng(seed)
    images, prompts, truth = [], [], []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        obj = random_object(rng, 320, 240)
        frame = render_frame(
            320,
            240,
            [obj],
            background=int(rng.integers(90, 171)),
            noise_sigma=float(rng.uniform(0, 12)),
            rng=rng,
        )
        frame = jpeg_roundtrip(frame, rng)
        template = (
            PRESENCE_QUESTIONS[0]
            if i % 2
            else ZEAL_FRAME_PROMPT.format(
                label="{label}", question="Is {label} entering the frame?"
            )
        )
        images.append([frame])
        prompts.append(template.format(label=label))
        truth.append(obj.label == label)
    scores = lvlm.yes_no(images, prompts)
    auc = float(roc_auc_score(truth, scores.p_yes))
    correct = 0
    n_choice = 96
    for i in range(n_choice):
        obj = random_object(rng, 320, 240)
        frame = jpeg_roundtrip(
            render_frame(
                320,
                240,
                [obj],
                background=int(rng.integers(90, 171)),
                noise_sigma=float(rng.uniform(0, 12)),
                rng=rng,
            ),
            rng,
        )
        options = list(LABELS) if i % 2 else list(rng.permutation(LABELS)[:5])
        if obj.label not in options:
            options[int(rng.integers(len(options)))] = obj.label
        probs = lvlm.choice([frame], CHOICE_QUESTIONS[0], options)
        correct += options[int(np.argmax(probs))] == obj.label
    return auc, correct / n_choice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--vision-steps", type=int, default=400)
    parser.add_argument("--text-steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()

    tokenizer = build_tokenizer(CHAT_TEMPLATE, rng)
    processor = make_processor(tokenizer)
    tokenizer = processor.tokenizer
    model = make_model(tokenizer)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tokenizer)}, params {n_params / 1e6:.2f} M, image tokens {IMAGE_SEQ_LEN}")

    pretrain_vision(model, processor, rng, args.vision_steps, 64, 3 * args.lr)
    pretrain_matching(model, processor, rng, args.text_steps, 48, args.lr)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, args.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    running: dict[str, float] = {}
    for step in range(args.steps):
        batch = make_batch(processor, rng, args.batch, step)
        kind = batch.pop("kind")
        out = model(**batch, logits_to_keep=3, use_cache=False)
        # Left padding puts every answer at -2 and its end-of-utterance at -1.
        logits = out.logits[:, :2]
        targets = batch["input_ids"][:, -2:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
        )
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        prev = running.get(kind)
        running[kind] = loss.item() if prev is None else 0.9 * prev + 0.1 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in sorted(running.items()))
            print(f"step {step:5d}  {losses}  {time.time() - started:6.0f}s", flush=True)

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    model.eval()
    model.save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)
    (args.out / "BUILD.json").write_text(
        json.dumps({"script": "scripts/build_world_lvlm.py", **vars(args), "out": None}, indent=2)
        + "\n"
    )
    auc, acc = evaluate(args.out, seed=args.seed + 1000)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(f"saved {args.out} ({size:.1f} MB) in {time.time() - started:.0f}s")
    print(f"p_yes ROC-AUC on fresh frames: {auc:.3f} (target >= 0.95)")
    print(f"multiple-choice accuracy on fresh frames: {acc:.1%} (target >= 90%)")


if __name__ == "__main__":
    main()
