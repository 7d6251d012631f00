"""transformers text generation for `zsar describe` (`hf:ORG/NAME`, `hf:/dir`, `builtin:NAME`).

Input: text-only chat prompts. Output: greedy answers (only the new text). Image-text-to-text
models are used through their language model (prompts without images, via `HFLVLM.generate`);
other models load as causal LMs with their tokenizer's chat template, if it has one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zsar_cli.backends.hf_loading import (
    HUB_HINT,
    check_source,
    first_line,
    is_local,
    resolve_device,
    resolve_dtype,
)
from zsar_cli.backends.hf_lvlm import HFLVLM, load_hf_lvlm
from zsar_cli.backends.hub import offline_if_unreachable
from zsar_cli.backends.lvlm_base import TextGenerator
from zsar_cli.errors import ModelError
from zsar_cli.quiet import quiet_libraries


class HFTextGenerator:
    """Greedy text generation from chat prompts; `generate_text(prompts) -> answers`
    (implements `TextGenerator`)."""

    def __init__(
        self, spec: str, model: Any = None, tokenizer: Any = None, lvlm: HFLVLM | None = None
    ):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.lvlm = lvlm

    @torch.inference_mode()
    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 256) -> list[str]:
        if self.lvlm is not None:
            return self.lvlm.generate([[] for _ in prompts], list(prompts), max_new_tokens)
        tok = self.tokenizer
        texts = []
        for prompt in prompts:
            if getattr(tok, "chat_template", None):
                messages = [{"role": "user", "content": prompt}]
                texts.append(
                    tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                )
            else:
                texts.append(prompt)
        device = next(self.model.parameters()).device
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        out = self.model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]


def load_hf_text(
    rest: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> TextGenerator:
    """`hf:<rest>` → a text generator (the registry's `hf` text scheme)."""
    return load_text_generator(f"hf:{rest}", device, dtype, trust_remote_code)


def load_text_generator(
    spec: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> TextGenerator:
    """`hf:NAME`/`hf:/dir`/`builtin:NAME` → a text generator. Image-text-to-text models are used
    through their language model (prompts without images); others load as causal LMs."""
    import transformers

    scheme, _, rest = spec.partition(":")
    if scheme == "builtin":
        from zsar_cli.backends.hf_lvlm import builtin_spec

        spec = builtin_spec(rest)
        scheme, _, rest = spec.partition(":")
    if scheme != "hf":
        raise ModelError(f"{spec}: a text model needs an hf: or builtin: spec")
    if not rest:
        raise ModelError("hf: spec needs a model name (hf:ORG/NAME) or a folder (hf:/path/to/dir)")
    path = Path(rest).expanduser()
    local = is_local(rest)
    if local and not (path / "config.json").is_file():
        raise ModelError(f"hf:{rest}: not a transformers model folder (no config.json)")
    if not local:
        check_source(rest)
    transformers.logging.set_verbosity_error()
    with quiet_libraries(), contextlib.nullcontext() if local else offline_if_unreachable():
        return _load_text_generator(spec, rest, path, local, device, dtype, trust_remote_code)


def _load_text_generator(
    spec: str, rest: str, path: Path, local: bool, device: str, dtype: str, trust_remote_code: bool
) -> HFTextGenerator:
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(
            str(path) if local else rest, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as exc:
        hint = "" if local else HUB_HINT
        raise ModelError(
            f"hf:{rest}: cannot load the model config ({first_line(exc)}){hint}"
        ) from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        lvlm = load_hf_lvlm(rest, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return HFTextGenerator(spec, lvlm=lvlm)
    source = str(path) if local else rest
    torch_device = resolve_device(device)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, dtype=resolve_dtype(dtype, torch_device), trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"hf:{rest}: cannot load the text model ({first_line(exc)})") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model_any: Any = model  # transformers' decorated .to() confuses type checkers
    model_any.to(torch_device).eval()
    return HFTextGenerator(spec, model=model, tokenizer=tokenizer)
