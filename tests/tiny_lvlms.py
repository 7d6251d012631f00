"""Tiny random-init LVLMs of the real families, each saved with a processor built here.

A few hundred KB each and built in about a second, they exercise the families' own processors,
feature extraction and merging (Idefics3's pixel shuffle, LLaVA-OneVision's anyres packing,
Qwen2.5-VL's windowed vision tower and multimodal RoPE) through `hf:/dir`, as a user's checkpoint
would. Their scores mean nothing; parity and layout tests use them. The real-size models are built
by scripts/build_real_lvlms.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

IDEFICS3_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
# Qwen2.5-VL's layout: system turn, then each image (or the video) wrapped in vision start/end,
# then the text. Qwen3-VL's processor expands the video into timestamped frames itself.
QWEN_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def world_tokenizer(extra_specials: list[str]):
    """The world LVLM's BPE tokenizer (all yes/no spellings single tokens) plus `extra_specials`."""
    from transformers import AutoTokenizer

    from zsar_cli.backends import MODELS_DIR

    tok = AutoTokenizer.from_pretrained(MODELS_DIR / "world-lvlm")
    tok.add_special_tokens({"additional_special_tokens": extra_specials})
    return tok


def build_tiny_idefics3(out: Path) -> Path:
    """A 2-layer random Idefics3 (the SmolVLM family) with an Idefics3Processor (the world
    tokenizer plus the family's special tokens, a SmolVLM-style chat template)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tok = world_tokenizer(["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"])
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 32}, max_image_size={"longest_edge": 32}, do_image_splitting=False
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=4,
        chat_template=IDEFICS3_TEMPLATE,
    )
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = Idefics3Config(
        vision_config={**small, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={
            **small,
            "model_type": "llama",
            "vocab_size": len(tok),
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "pad_token_id": tok.pad_token_id,
        },
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_llava_onevision(out: Path) -> Path:
    """A random LLaVA-OneVision (SigLIP + Qwen2) with a WordLevel tokenizer (its own small
    vocabulary, so only some yes/no spellings exist) and anyres processing."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        PreTrainedTokenizerFast,
    )

    words = [
        *("yes", "Yes", "no", "No", "A", "B", "C", "is", "there", "a", "red", "circle"),
        *("blue", "square", "in", "this", "frame", "which", "of", "these", "shown", "answer"),
        *("with", "the", "option's", "letter", "from", "given", "choices", "directly", "any"),
        *("object", "video", "entering", "leaving", "only", "or", "can", "you", "see"),
    ]
    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    vocab = {t: i for i, t in enumerate([*specials, *sorted(set(words)), "?", ".", "\n", ":"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>"
    )
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {% for p in m['content'] %}"
        "{% if p['type'] == 'image' %}<image>{% elif p['type'] == 'video' %}<video>"
        "{% else %}{{ p['text'] }}{% endif %}{% endfor %}"
        "<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
    )
    # Two grid pinpoints so a wide frame is split (anyres: base view + 2 crops, unpadded).
    pinpoints = [[32, 32], [32, 64]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=fast,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32}),
        num_image_tokens=16,
        vision_feature_select_strategy="full",
        chat_template=template,
    )
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(fast),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        },
        image_token_index=fast.convert_tokens_to_ids("<image>"),
        video_token_index=fast.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
    )
    torch.manual_seed(0)
    LlavaOnevisionForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_qwen2_5_vl(out: Path) -> Path:
    """A random Qwen2.5-VL (windowed vision tower with full-attention blocks, 2×2 patch merger,
    multimodal RoPE) with a Qwen2-VL image processor capped at 28·28·16 pixels."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = world_tokenizer(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16),
        chat_template=QWEN_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e6,
                "mrope_section": [2, 3, 3],
            },
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
            "bos_token_id": None,
        },
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_qwen3_vl(out: Path) -> Path:
    """A random Qwen3-VL (16-px patches, learned position embeddings, DeepStack features into
    the first decoder layers, interleaved multimodal RoPE) with its image and video processors
    capped at 32·32·16 pixels (a clip at 32·32·64 in all); the processor writes "<t seconds>"
    before each temporal patch."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = world_tokenizer(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    cap = {"min_pixels": 32 * 32 * 4, "max_pixels": 32 * 32 * 16}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, **cap),
        tokenizer=tok,
        # A clip's frames share this pixel budget (as in the published processor): 128x96
        # frames keep their size in a 4-frame clip and are scaled down in an 8-frame one.
        video_processor=Qwen3VLVideoProcessor(
            size={"shortest_edge": cap["min_pixels"], "longest_edge": 32 * 32 * 64}
        ),
        chat_template=QWEN_TEMPLATE,
    )
    config = Qwen3VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0, 1],
        },
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5e6,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
            "bos_token_id": None,
        },
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    Qwen3VLForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_smolvlm(out: Path) -> Path:
    """A random SmolVLM (SmolVLM2's classes: Idefics3 architecture, SmolVLMProcessor with its
    video path, which writes "Frame from MM:SS:" before each frame and needs num2words)."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    tok = world_tokenizer(["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"])
    edge = {"longest_edge": 32}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size=edge, max_image_size=edge, do_image_splitting=False
        ),
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(size=edge, max_image_size=edge),
        image_seq_len=4,
        chat_template=DEFAULT_CHAT_TEMPLATE,
    )
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = SmolVLMConfig(
        vision_config={**small, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={
            **small,
            "model_type": "llama",
            "vocab_size": len(tok),
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "pad_token_id": tok.pad_token_id,
        },
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    SmolVLMForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def write_frame_items(path: Path, items: list, video_id: str = "v") -> Path:
    """A `frames` artifact of one video from `select_tokens.FrameItem`s (PNG, exact pixels)."""
    from zsar_cli.artifacts import build_table, write_artifact
    from zsar_cli.images import encode_image

    height, width = items[0].image.shape[:2]
    cols = {
        "video_id": [video_id] * len(items),
        "path": [f"/x/{video_id}.mp4"] * len(items),
        "frame_index": [f.frame_index for f in items],
        "timestamp": [f.timestamp for f in items],
        "segment": [f.segment for f in items],
        "width": [width] * len(items),
        "height": [height] * len(items),
        "image": [encode_image(f.image, "png") for f in items],
        "error": [None] * len(items),
    }
    table = build_table("frames", cols)
    write_artifact(table, path, "frames", {"test": 1}, extra_metadata={"image_encoding": "png"})
    return path
