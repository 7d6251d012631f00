"""Build random-init LVLMs at real published sizes, for the slow tests and the LVLM benchmarks.

Input: nothing downloaded. The published configurations of four model families are written out
below (hidden sizes, layers, heads, vision towers, patch and image sizes, pixel shuffle / merge
sizes, anyres grids, chat templates, processor settings); a byte-level BPE tokenizer is trained
here on English glosses (timm's ImageNet synset definitions) and zsar's own prompts, with each
family's special tokens added. Output: one transformers model folder per model under
`$ZSAR_CACHE_DIR/real-lvlms/<name>` (default `~/.cache/zsar/real-lvlms/<name>`), loadable with
`hf:/that/dir` like a downloaded checkpoint, plus BUILD.json (the configuration, parameter count,
image tokens of a 640x360 frame). Weights are random, so answers mean nothing; speed, memory and
code paths are those of the real models. Never committed (0.9-3.6 GB each).

Models:
- `smolvlm2-256m`: SmolVLM2-256M-Video-Instruct. SigLIP-B/16 at 512 px (hidden 768, 12 layers,
  12 heads), pixel shuffle 4 → 64 image tokens per 512-px image, SmolLM2-135M language model
  (hidden 576, 30 layers, 9 heads, 3 KV heads, vocab 49,280, RoPE theta 1e5, untied LM head):
  256.5 M parameters. SmolVLM2's own classes (the Idefics3 architecture; SmolVLMProcessor with its
  video path, "Frame from MM:SS:" per frame, and its published chat template); frames are
  processed the way SmolVLM2 processes video frames: longest edge 512, no image splitting
  (splitting a 640x360 frame into 512-px tiles would make 13 images of it).
- `llava-onevision-0.5b`: LLaVA-OneVision-Qwen2-0.5B-OV. SigLIP-so400m/14 at 384 px (hidden 1152,
  26 layers, 16 heads), 2-layer GELU projector, anyres_max_9 over a 6x6 grid of 384-px
  pinpoints (a 640x360 frame: base view + 1x2 tiles, unpadded), Qwen2-0.5B (hidden 896, 24
  layers, 14 heads, 2 KV heads, vocab 152,000, tied): 0.89 B parameters.
- `qwen2.5-vl-3b-vision`: Qwen2.5-VL-3B-Instruct's vision tower (32 layers, hidden 1280, 16 heads,
  windowed attention with full attention in blocks 7/15/23/31, 14-px patches, 2x2 merger to 2048)
  and processor (min 3136, max 12,845,056 pixels), with the language model shrunk to 2 of its 36
  layers (hidden 2048, 16 heads, 2 KV heads, multimodal RoPE sections 16/24/24) and to the local
  tokenizer's vocabulary.
- `qwen3-vl-4b-vision`: Qwen3-VL-4B-Instruct's vision tower (24 layers, hidden 1024, 16 heads,
  16-px patches, learned position embeddings interpolated from a 48x48 grid, 2x2 merger to 2560,
  DeepStack features from blocks 5/11/17 into the first three decoder layers) and processor
  (65,536-16,777,216 pixels, mean/std 0.5; video processor at 2 fps, "<t seconds>" per temporal
  patch), with the language model shrunk to 3 of its 36 layers (hidden 2560, 32 heads, 8 KV
  heads, head dim 128, interleaved multimodal RoPE sections 24/20/20, theta 5e6): the three
  layers that receive the DeepStack features.

    python scripts/build_real_lvlms.py                 # all four (~13 GB on disk)
    python scripts/build_real_lvlms.py smolvlm2-256m   # one
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Run as a file (python scripts/build_real_lvlms.py) or imported by the tests as scripts.….
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.real_lvlm_tokenizer import BPE_VOCAB, train_tokenizer

LLAVA_OV_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\\n' + content['text'] }}{% endfor %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
QWEN2_5_VL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3-VL's published template has no default system turn.
QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def cache_root() -> Path:
    root = os.environ.get("ZSAR_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "zsar"
    return base / "real-lvlms"


def model_dir(name: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / name


# ---------------------------------------------------------------------------------------------
# The models


def build_smolvlm2(out: Path) -> dict[str, Any]:
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    rows_cols = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        "<end_of_utterance>",
        *rows_cols,
    ]
    tok = train_tokenizer(specials, pad="<|im_end|>", eos="<end_of_utterance>", bos="<|im_start|>")
    frame = {
        "do_resize": True,
        "size": {"longest_edge": 512},
        "max_image_size": {"longest_edge": 512},
        "resample": 1,  # Lanczos
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pad": True,
    }
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, **frame),
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(**frame),
        image_seq_len=64,
        chat_template=DEFAULT_CHAT_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "num_channels": 3,
            "patch_size": 16,
            "image_size": 512,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": 49280,
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "hidden_act": "silu",
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
            "tie_word_embeddings": False,
            "pad_token_id": ids("<|im_end|>"),
            "bos_token_id": ids("<|im_start|>"),
            "eos_token_id": ids("<end_of_utterance>"),
        },
        image_token_id=ids("<image>"),
        scale_factor=4,
        tie_word_embeddings=False,
        pad_token_id=ids("<|im_end|>"),
    )
    torch.manual_seed(0)
    model = SmolVLMForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids("<end_of_utterance>"), ids("<|im_end|>")]
    return save(model, processor, out, {"published": "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"})


def build_llava_onevision(out: Path) -> dict[str, Any]:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = train_tokenizer(specials, pad="<|endoftext|>", eos="<|im_end|>")
    pinpoints = [[384 * h, 384 * w] for h in range(1, 7) for w in range(1, 7)]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": 384, "width": 384},
            image_grid_pinpoints=pinpoints,
            do_pad=True,
            resample=3,  # bicubic
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        ),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(
            size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        ),
        num_image_tokens=729,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=LLAVA_OV_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 26,
            "num_attention_heads": 16,
            "image_size": 384,
            "patch_size": 14,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
            "vision_use_head": False,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": 152000,
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "tie_word_embeddings": True,
            "pad_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
        },
        image_token_index=ids("<image>"),
        video_token_index=ids("<video>"),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=pinpoints,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids("<|im_end|>")
    return save(model, processor, out, {"published": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"})


def qwen_tokenizer() -> Any:
    """The local BPE tokenizer with the Qwen-VL families' special tokens."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>"]
    specials += ["<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
    return train_tokenizer(specials, pad="<|endoftext|>", eos="<|im_end|>")


def qwen_token_ids(ids: Callable[[str], int]) -> dict[str, Any]:
    """The multimodal token ids of a Qwen-VL configuration (tied embeddings, as published)."""
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
        "tie_word_embeddings": True,
    }


def qwen_eos(ids: Callable[[str], int]) -> list[int]:
    return [ids("<|im_end|>"), ids("<|endoftext|>")]


def build_qwen2_5_vl(out: Path, text_layers: int = 2) -> dict[str, Any]:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = qwen_tokenizer()
    pixels = {"min_pixels": 3136, "max_pixels": 12845056}
    common = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            **pixels, **common, image_mean=CLIP_MEAN, image_std=CLIP_STD
        ),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(**common, image_mean=CLIP_MEAN, image_std=CLIP_STD),
        chat_template=QWEN2_5_VL_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    vocab = (len(tok) + 127) // 128 * 128
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "in_channels": 3,
            "hidden_act": "silu",
            "out_hidden_size": 2048,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "tokens_per_second": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        text_config={
            "vocab_size": vocab,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": text_layers,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [16, 24, 24],
            },
            "use_sliding_window": False,
            "tie_word_embeddings": True,
            "pad_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "bos_token_id": None,
        },
        **qwen_token_ids(ids),
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = qwen_eos(ids)
    note = {
        "published": "Qwen/Qwen2.5-VL-3B-Instruct (vision tower and processor)",
        "shrunk": f"language model: {text_layers} of 36 layers, vocabulary {vocab} of 151,936",
    }
    return save(model, processor, out, note)


def build_qwen3_vl(out: Path, text_layers: int = 3) -> dict[str, Any]:
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = qwen_tokenizer()
    half = [0.5, 0.5, 0.5]
    common = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            size={"shortest_edge": 65536, "longest_edge": 16777216},
            **common,
            image_mean=half,
            image_std=half,
        ),
        tokenizer=tok,
        video_processor=Qwen3VLVideoProcessor(
            size={"shortest_edge": 4096, "longest_edge": 25165824},
            **common,
            image_mean=half,
            image_std=half,
            fps=2,
        ),
        chat_template=QWEN3_VL_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    vocab = (len(tok) + 127) // 128 * 128
    config = Qwen3VLConfig(
        vision_config={
            "depth": 24,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_heads": 16,
            "in_channels": 3,
            "hidden_act": "gelu_pytorch_tanh",
            "out_hidden_size": 2560,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [5, 11, 17],
        },
        text_config={
            "vocab_size": vocab,
            "hidden_size": 2560,
            "intermediate_size": 9728,
            "num_hidden_layers": text_layers,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "hidden_act": "silu",
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
            "tie_word_embeddings": True,
            "pad_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "bos_token_id": None,
        },
        **qwen_token_ids(ids),
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = qwen_eos(ids)
    note = {
        "published": "Qwen/Qwen3-VL-4B-Instruct (vision tower, DeepStack mergers, processor)",
        "shrunk": f"language model: {text_layers} of 36 layers, vocabulary {vocab} of 151,936",
    }
    return save(model, processor, out, note)


MODELS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "smolvlm2-256m": build_smolvlm2,
    "llava-onevision-0.5b": build_llava_onevision,
    "qwen2.5-vl-3b-vision": build_qwen2_5_vl,
    "qwen3-vl-4b-vision": build_qwen3_vl,
}


def image_tokens(processor: Any, image_token_id: int, width: int = 640, height: int = 360) -> int:
    """How many image tokens one frame of this size becomes."""
    frame = np.zeros((height, width, 3), np.uint8)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    batch = processor(text=[text], images=[[frame]], return_tensors="pt")
    return int((batch["input_ids"] == image_token_id).sum())


def save(model: Any, processor: Any, out: Path, note: dict[str, Any]) -> dict[str, Any]:
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    config = model.config
    token_id = getattr(config, "image_token_id", None)
    if token_id is None:
        token_id = config.image_token_index
    record = {
        **note,
        "model_type": config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "image_tokens_640x360": image_tokens(processor, int(token_id)),
        "tokenizer": f"byte-level BPE, {BPE_VOCAB} pieces, trained by this script",
        "config": config.to_dict(),
    }
    return record


def build(name: str, root: Path | None = None, force: bool = False) -> Path:
    """Build model `name` into its folder (atomically: a half-written build is never found)."""
    target = model_dir(name, root)
    if (target / "BUILD.json").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    record = MODELS[name](work)
    record["build_seconds"] = round(time.perf_counter() - start, 1)
    (work / "BUILD.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target


def ensure(name: str) -> Path:
    """The folder of model `name`, built first if it is not there yet."""
    return build(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--root", type=Path, default=None, help=f"default: {cache_root()}")
    parser.add_argument("--force", action="store_true", help="rebuild existing models")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    for name in args.names or list(MODELS):
        folder = build(name, args.root, args.force)
        record = json.loads((folder / "BUILD.json").read_text())
        print(
            f"{name}: {record['parameters'] / 1e6:.1f} M parameters, "
            f"{record['image_tokens_640x360']} image tokens per 640x360 frame → hf:{folder}"
        )


if __name__ == "__main__":
    main()
