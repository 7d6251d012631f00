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


def random_frame(
    rng: np.random.Generator, n_objects: int, render: bool = True
) -> tuple[np.ndarray | None, list[str]]:
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    objects = []
    for _ in range(n_objects):
        objects.append(random_object(rng, width, height, max_speed=0.0))
    if not render:
        return None, [o.label for o in objects]
    frame = render_frame(
        width,
        height,
        objects,
        background=int(rng.integers(90, 171)),
        noise_sigma=float(rng.uniform(0, 12)),
        rng=rng,
    )
    return jpeg_roundtrip(frame, rng), [o.label for o in objects]


def near_label(rng: np.random.Generator, label: str) -> str:
    """A different label sharing the color or the shape (the hard negatives)."""
    color, shape = label.split()[1:]
    if rng.random() < 0.5:
        other = [s for s in SHAPES if s != shape]
        return f"a {color} {other[int(rng.integers(len(other)))]}"
    other_c = [c for c in COLORS if c != color]
    return f"a {other_c[int(rng.integers(len(other_c)))]} {shape}"


KINDS = ("presence", "zeal", "anomaly", "choice")
KIND_WEIGHTS = (0.33, 0.25, 0.12, 0.30)


def sample_example(
    rng: np.random.Generator, render: bool = True, kind: str | None = None
) -> tuple[np.ndarray, str, str]:
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
            return frame, q, " No"
        q = fill(ANOMALY_QUESTIONS[int(rng.integers(len(ANOMALY_QUESTIONS)))], LABELS[0])
        if not present and rng.random() < 0.3:
            q = fill(EMPTY_QUESTIONS[int(rng.integers(len(EMPTY_QUESTIONS)))], LABELS[0])
            return frame, q, " Yes"
        return frame, q, " Yes" if present else " No"
    if kind == "choice":
        truth = present[0] if present else BACKGROUND_PHRASE
        n_opt = int(rng.integers(2, 13)) if rng.random() < 0.4 else int(rng.integers(2, 7))
        pool = [lab for lab in LABELS if lab != truth]
        if rng.random() < 0.3 or not present:
            pool.append(BACKGROUND_PHRASE) if truth != BACKGROUND_PHRASE else None
        options = [truth, *rng.choice(pool, size=min(n_opt - 1, len(pool)), replace=False).tolist()]
        rng.shuffle(options)
        question = CHOICE_QUESTIONS[int(rng.integers(len(CHOICE_QUESTIONS)))]
        letter = OPTION_LETTERS[options.index(truth)]
        return frame, format_choice_prompt(question, options), " " + letter
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
    return frame, q, answer


def build_tokenizer(processor_template: str, rng: np.random.Generator):
    """Byte-level BPE trained on the world's prompts, wrapped as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for _ in range(6000):
        _, text, answer = sample_example(rng, render=False)
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
            "intermediate_size": 320,
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


def make_batch(processor, rng: np.random.Generator, size: int):
    # One question kind per batch: prompts of similar length pad little (choice prompts are long).
    kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
    frames, texts = [], []
    for _ in range(size):
        frame, text, answer = sample_example(rng, kind=kind)
        frames.append([frame])
        texts.append(chat_prompt(processor, 1, text) + answer + "<end_of_utterance>")
    batch = processor(text=texts, images=frames, return_tensors="pt", padding=True)
    mask = batch["attention_mask"]
    batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return batch


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
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
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

    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, args.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    running = None
    for step in range(args.steps):
        batch = make_batch(processor, rng, args.batch)
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
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {running:.4f}  {time.time() - started:6.0f}s", flush=True)

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    model.eval()
    model.save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)
    (args.out / "BUILD.json").write_text(
        json.dumps(
            {
                "script": "scripts/build_world_lvlm.py",
                "steps": args.steps,
                "seed": args.seed,
                "batch": args.batch,
                "lr": args.lr,
            },
            indent=2,
        )
        + "\n"
    )
    auc, acc = evaluate(args.out, seed=args.seed + 1000)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(f"saved {args.out} ({size:.1f} MB) in {time.time() - started:.0f}s")
    print(f"p_yes ROC-AUC on fresh frames: {auc:.3f} (target >= 0.95)")
    print(f"multiple-choice accuracy on fresh frames: {acc:.1%} (target >= 90%)")


if __name__ == "__main__":
    main()
