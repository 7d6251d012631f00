"""Train the tiny world CLIP shipped as `builtin:world-clip` (../shared/SYNTHWORLD.md).

Output: zsar_cli/models/world-clip/open_clip_config.json (open_clip's model + preprocess config,
the Hugging Face Hub layout), world-clip.safetensors (float16 weights) and prompt_contract.json
(the prompt templates it was trained on, `zsar_cli.backends.contract`), loaded by zsar through
the same `openclip:ARCH@PATH` code path as any user checkpoint.

The model is a small open_clip CLIP (ResNet tower at 64×64; 2-layer text transformer over
open_clip's own BPE vocabulary, which ships inside the package, so no download). It is trained
contrastively on rendered world frames against the 12 label phrases plus "an empty gray
background", each phrase also inside the built-in video templates and with random "which has ..."
suffixes, so the template ensemble and the descriptor prompts of `zsar classify` work on it.

Deterministic (fixed seeds, CPU, 1 thread) and a few minutes at most. Run:
    python scripts/build_world_clip.py
It prints the frame-level zero-shot top-1 on fresh frames (other seed) at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zsar_cli import synthetic
from zsar_cli.backends.contract import clip_contract, write_contract
from zsar_cli.labels import RANDOM_WORDS
from zsar_cli.prompts import DESCRIPTOR_PATTERN, VIDEO_TEMPLATES

ARCH = "zsar-world-rn"
OUT_DIR = Path(__file__).resolve().parents[1] / "zsar_cli" / "models" / "world-clip"
WEIGHTS = "world-clip.safetensors"
CLASSES: tuple[str, ...] = (*synthetic.LABELS, synthetic.BACKGROUND_PHRASE)

CONFIG = {
    "zsar_arch": ARCH,
    "model_cfg": {
        "embed_dim": 64,
        # A small ModifiedResNet tower: a 3-layer ViT trained from scratch on CPU had to learn
        # translation invariance from data and was still near color-only accuracy (~50% top-1)
        # after 500 steps; convolutions learn the shapes in a few hundred steps.
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 2,
            "mlp_ratio": 2.0,
        },
    },
    # Squash instead of open_clip's default centre crop: world objects may sit at the frame's
    # left/right edge, which a centre crop of a 4:3 or 16:9 frame would cut away.
    "preprocess_cfg": {
        "size": 64,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "interpolation": "bilinear",
        "resize_mode": "squash",
    },
}


def render(rng: np.random.Generator, label: str | None) -> np.ndarray:
    """A world frame as the pipeline sees it: random size/background/noise, JPEG round trip."""
    width = int(rng.integers(160, 641))
    height = int(np.clip(round(width * rng.uniform(0.55, 0.8)), 120, 480))
    objects = [] if label is None else [synthetic.random_object(rng, width, height, label)]
    frame = synthetic.render_frame(
        width,
        height,
        objects,
        background=int(rng.integers(90, 171)),
        noise_sigma=float(rng.uniform(0, 12)),
        rng=rng,
    )
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"))


def dataset(seed: int, per_class: int, preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    pixels, targets = [], []
    for index, label in enumerate(CLASSES):
        for _ in range(per_class):
            frame = render(rng, None if label == synthetic.BACKGROUND_PHRASE else label)
            pixels.append(preprocess(Image.fromarray(frame)))
            targets.append(index)
    return torch.stack(pixels), torch.tensor(targets)


def prompt_variants(label: str, rng: np.random.Generator) -> str:
    """One random phrasing of a class: bare, templated, and/or with a random descriptor."""
    core = label
    if rng.random() < 0.3:
        words = rng.choice(np.array(RANDOM_WORDS), size=int(rng.integers(1, 3)), replace=False)
        core = DESCRIPTOR_PATTERN.format(label=label, descriptor=" ".join(words))
    if rng.random() < 0.7:
        core = str(rng.choice(np.array(VIDEO_TEMPLATES))).format(core)
    return core


def train(args: argparse.Namespace) -> Path:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="world-clip-"))
    (work / "open_clip_config.json").write_text(json.dumps(CONFIG, indent=2))
    name = f"local-dir:{work}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, load_weights=False)
    tokenizer = open_clip.get_tokenizer(name)

    t0 = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        saved = torch.load(cache, weights_only=True)
        pixels, targets = saved["pixels"], saved["targets"]
    else:
        pixels, targets = dataset(args.seed, args.per_class, preprocess)
        if cache is not None:
            torch.save({"pixels": pixels, "targets": targets}, cache)
    print(f"rendered {len(targets)} training frames in {time.perf_counter() - t0:.1f}s")

    rng = np.random.default_rng(args.seed + 1)
    steps_per_epoch = math.ceil(len(targets) / args.batch_size)
    total = steps_per_epoch * args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=total, pct_start=0.1
    )
    model.train()
    step = 0
    for epoch in range(args.epochs):
        order = torch.from_numpy(rng.permutation(len(targets)))
        correct = seen = 0
        loss_sum = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            texts = [prompt_variants(label, rng) for label in CLASSES]
            image = model.encode_image(pixels[idx], normalize=True)
            text = model.encode_text(tokenizer(texts), normalize=True)
            logits = model.logit_scale.exp() * image @ text.T
            # Image→class and class→image (over the images of that class in the batch) terms.
            loss = F.cross_entropy(logits, targets[idx])
            present = torch.unique(targets[idx])
            text_logits = logits.T[present]
            positive = (targets[idx][None, :] == present[:, None]).float()
            loss = (
                loss
                + 0.5
                * -((text_logits.log_softmax(dim=1) * positive).sum(1) / positive.sum(1)).mean()
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == targets[idx]).sum())
            seen += len(idx)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.3f} "
            f"train acc {correct / seen:.3f} ({time.perf_counter() - t0:.0f}s)"
        )

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(OUT_DIR / WEIGHTS), metadata={"format": "pt", "zsar_arch": ARCH})
    (OUT_DIR / "open_clip_config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    # The prompt templates it learned; zsar refuses to load it once they change.
    write_contract(OUT_DIR, "world-clip", "python scripts/build_world_clip.py", clip_contract())
    shutil.rmtree(work, ignore_errors=True)
    return OUT_DIR / WEIGHTS


def evaluate(seed: int, per_class: int) -> None:
    """Frame-level zero-shot top-1 of the saved model, loaded the way zsar loads it."""
    from zsar_cli.backends import load_encoder
    from zsar_cli.labels import build_prompts, label_weights

    encoder = load_encoder("builtin:world-clip", device="cpu", batch_size=128)
    rng = np.random.default_rng(seed)
    labels = list(synthetic.LABELS)
    frames, truth = [], []
    for index, label in enumerate(labels):
        for _ in range(per_class):
            frames.append(render(rng, label))
            truth.append(index)
    images = encoder.encode_images(frames)
    for templates in ("none", "video"):
        prompts = build_prompts(labels, templates)
        emb = encoder.encode_texts([p.text for p in prompts])
        weights = label_weights(labels, [p.label for p in prompts], [p.kind for p in prompts], emb)
        accuracy = float(((images @ weights.T).argmax(1) == np.array(truth)).mean())
        print(
            f"frame-level zero-shot top-1 on {len(truth)} fresh frames "
            f"(templates={templates}): {accuracy:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    # One thread: on a shared 2-core machine, two torch threads spin against other processes
    # and run several times slower than one (measured); one thread also fixes the float order.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--cache", help="Keep the rendered training set in this file (reruns).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if not args.eval_only:
        path = train(args)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    evaluate(seed=args.seed + 1000, per_class=50)
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
