"""Random-init text LLMs at published configurations, for describe's tests and benchmark.

Weights cannot be downloaded here, so a model is built from its published sizes with random
weights (speed, memory and code paths are then real) and a byte-level BPE tokenizer is trained
on local text (this project's docs and describe's prompt) with SmolLM2's special tokens and
ChatML chat template. `build_text_lm(folder, "smollm2-360m")` writes a `save_pretrained` folder
that `hf:/folder` loads like a Hub checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# SmolLM2-360M(-Instruct): a Llama with these sizes (its published config.json).
SMOLLM2_360M: dict[str, Any] = {
    "hidden_size": 960,
    "intermediate_size": 2560,
    "num_hidden_layers": 32,
    "num_attention_heads": 15,
    "num_key_value_heads": 5,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
# The same family shrunk for the default test suite (vocab = the tokenizer's).
TINY: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
SIZES = {"smollm2-360m": SMOLLM2_360M, "tiny": TINY}


def corpus() -> list[str]:
    from zsar_cli.stages.describe import PROMPT

    texts = [PROMPT]
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        texts.append(path.read_text(encoding="utf-8"))
    return texts


def build_tokenizer(vocab_size: int = 2048) -> Any:
    """A byte-level BPE (every text encodable) with SmolLM2's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(size: str, tokenizer: Any, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sizes = dict(SIZES[size])
    sizes.setdefault("vocab_size", len(tokenizer))
    config = LlamaConfig(
        **sizes,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def build_text_lm(folder: Path, size: str = "tiny", vocab: int = 2048, seed: int = 0) -> Path:
    """Save a random-init model of `size` and its tokenizer in `folder` (for `hf:/folder`)."""
    tokenizer = build_tokenizer(vocab)
    model = build_model(size, tokenizer, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
