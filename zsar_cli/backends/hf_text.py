"""transformers text generation for `zsar describe` (`hf:ORG/NAME`, `hf:/dir`, `builtin:NAME`).

Input: text-only chat prompts (and, for records, a `RecordSchema`). Output: greedy answers (only
the new text), or one JSON record per prompt decoded under the schema
(`zsar_cli.backends.json_constraint`), which always parses. Image-text-to-text models are used
through their language model (prompts without images, built by `HFLVLM.build_inputs`); other
models load as causal LMs with their tokenizer's chat template, if it has one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
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
from zsar_cli.backends.text_base import RecordGenerator, RecordSchema
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.quiet import quiet_libraries

# Shorter common beginnings are not worth a separate forward pass.
MIN_SHARED_PREFIX_CHARS = 64


class HFTextGenerator:
    """Greedy generation from chat prompts: free text (`generate_text`) or schema records
    (`generate_records`); implements `TextGenerator` and `RecordGenerator`."""

    def __init__(
        self,
        spec: str,
        model: Any = None,
        tokenizer: Any = None,
        lvlm: HFLVLM | None = None,
        revision: str = "",
    ):
        self.spec = spec
        self.model = model if lvlm is None else lvlm.model
        self.tokenizer = tokenizer if lvlm is None else lvlm.tokenizer
        self.lvlm = lvlm
        self.revision = revision
        self.share_prefix = True
        self._table: Any = None
        self._prefix: tuple[str, list[int], Any] | None = None  # (text, ids, KV cache)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _chat_texts(self, prompts: Sequence[str]) -> list[str]:
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            return list(prompts)
        return [
            tok.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]

    def _inputs(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The prompts as one user turn each, chat-templated, left-padded, on the model's device."""
        if self.lvlm is not None:
            return self.lvlm.build_inputs([[] for _ in prompts], list(prompts)).tensors
        batch = self.tokenizer(
            self._chat_texts(prompts), return_tensors="pt", padding=True, add_special_tokens=False
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def _shared_prefix_inputs(self, prompts: Sequence[str]) -> dict[str, Any] | None:
        """Inputs that reuse the KV cache of the prompts' common beginning, or None.

        describe's prompts share everything up to the label (instructions and worked examples,
        ~90% of each prompt), so that part is run through the model once and its cache copied to
        every row. The rows are [shared prefix][padding][own suffix] with the padding masked;
        generate() derives positions from the attention mask, so each row sees the same
        positions as unpadded. The prefix is cut at a line start, where tokenizers' pre-splitting
        does not merge across the cut. Causal LMs whose cache is full attention only (an LVLM's
        processor lays out its own inputs; sliding-window and linear-attention caches do not
        continue from a prefix with padding after it).
        """
        if self.lvlm is None and len(prompts) > 0:
            texts = self._chat_texts(prompts)
            cached = self._prefix[0] if self._prefix is not None else None
            if cached is not None and all(t.startswith(cached) for t in texts):
                prefix = cached
            elif len(texts) > 1:
                common = _common_prefix(texts)
                prefix = common[: common.rfind("\n") + 1]
            else:
                return None
            if len(prefix) < MIN_SHARED_PREFIX_CHARS or any(len(t) == len(prefix) for t in texts):
                return None
            return self._prefixed(prefix, [t[len(prefix) :] for t in texts])
        return None

    @torch.inference_mode()
    def _prefixed(self, prefix: str, suffixes: list[str]) -> dict[str, Any] | None:
        from transformers.cache_utils import DynamicCache, DynamicLayer

        tok = self.tokenizer
        if self._prefix is None or self._prefix[0] != prefix:
            ids = tok(prefix, return_tensors="pt", add_special_tokens=False)["input_ids"]
            out = self.model(input_ids=ids.to(self.device), use_cache=True)
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            layers = getattr(cache, "layers", None) or [None]
            if type(cache) is not DynamicCache or any(type(x) is not DynamicLayer for x in layers):
                self.share_prefix = False  # decided once per model, from its cache's layers
                return None
            self._prefix = (prefix, ids[0].tolist(), cache)
        _, prefix_ids, prefix_cache = self._prefix
        tails = [tok(s, add_special_tokens=False)["input_ids"] for s in suffixes]
        width = max(len(t) for t in tails)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = [prefix_ids + [pad] * (width - len(t)) + t for t in tails]
        mask = [[1] * len(prefix_ids) + [0] * (width - len(t)) + [1] * len(t) for t in tails]
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(tails))
        return {
            "input_ids": torch.tensor(input_ids, device=self.device),
            "attention_mask": torch.tensor(mask, device=self.device),
            "cache": cache,
        }

    @torch.inference_mode()
    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 256) -> list[str]:
        if self.lvlm is not None:
            return self.lvlm.generate([[] for _ in prompts], list(prompts), max_new_tokens)
        batch = self._inputs(prompts)
        out = self.model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def eos_ids(self) -> list[int]:
        """The tokenizer's EOS and the model's generation-config EOS ids (chat models often end
        their turn with a token other than the tokenizer's EOS)."""
        ids: set[int] = set()
        for value in (
            self.tokenizer.eos_token_id,
            getattr(getattr(self.model, "generation_config", None), "eos_token_id", None),
        ):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return sorted(ids)

    def token_table(self) -> Any:
        """Each token's text and features, decoded once per loaded model."""
        if self._table is None:
            from zsar_cli.backends.json_constraint import TokenTable

            size = int(self.model.get_output_embeddings().weight.shape[0])
            self._table = TokenTable.from_tokenizer(self.tokenizer, size)
        return self._table

    @torch.inference_mode()
    def generate_records(
        self, prompts: Sequence[str], schema: RecordSchema, max_new_tokens: int
    ) -> list[str]:
        """One record per prompt, greedy under the schema's constraint (always parseable)."""
        from transformers import GenerationConfig, LogitsProcessorList

        from zsar_cli.backends.json_constraint import (
            BudgetError,
            RecordLogitsProcessor,
            RecordMachine,
        )

        eos = self.eos_ids()
        try:
            machine = RecordMachine(schema, self.token_table(), max_new_tokens, eos)
        except BudgetError as exc:
            raise ConfigError(
                f"--max-new-tokens {max_new_tokens}: too few for one record with the tokenizer "
                f"of {self.spec} (needs at least {exc.needed})"
            ) from None
        except ValueError as exc:
            raise ModelError(f"{self.spec}: cannot constrain decoding ({exc})") from None
        processor = RecordLogitsProcessor(machine, len(prompts))
        pad = self.tokenizer.pad_token_id
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos,
            pad_token_id=pad if pad is not None else eos[0],
        )
        inputs = self._shared_prefix_inputs(prompts) if self.share_prefix else None
        # Pure greedy whatever the model's generation_config.json suggests: generate() fills
        # every setting left unset from model.generation_config (repetition penalties, n-gram
        # bans, suppressed tokens...), so the model's own is swapped out for a blank one here.
        own = self.model.generation_config
        self.model.generation_config = GenerationConfig()
        try:
            self.model.generate(
                **(inputs or self._inputs(prompts)),
                generation_config=config,
                logits_processor=LogitsProcessorList([processor]),
            )
        finally:
            self.model.generation_config = own
        return processor.texts()


def _common_prefix(texts: Sequence[str]) -> str:
    """The longest common beginning, character by character (of the first and last in order)."""
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


def folder_revision(folder: Path) -> str:
    """A local model folder's fingerprint: its files' names, sizes and modification times.

    Cheap (no hashing of gigabytes of weights) and conservative: rewriting a file changes it, so
    a retrained model never reuses cached answers; copying the folder elsewhere does too.
    """
    digest = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            digest.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()[:16]


def hub_revision(name: str) -> str:
    """The Hub commit of the cached snapshot a model loads from (its `snapshots/<sha>` folder)."""
    try:
        from transformers.utils import cached_file

        config = cached_file(name, "config.json")
    except (OSError, ValueError):
        return ""
    if config is None:
        return ""
    parts = Path(config).parts
    if "snapshots" in parts[:-1]:
        return "hub:" + parts[parts.index("snapshots") + 1]
    return folder_revision(Path(config).parent)


def load_hf_text(
    rest: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> RecordGenerator:
    """`hf:<rest>` → a text generator (the registry's `hf` text scheme)."""
    return load_text_generator(f"hf:{rest}", device, dtype, trust_remote_code)


def load_text_generator(
    spec: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> RecordGenerator:
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

    revision = folder_revision(path) if local else hub_revision(rest)

    if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        lvlm = load_hf_lvlm(rest, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return HFTextGenerator(spec, lvlm=lvlm, revision=revision)
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
    return HFTextGenerator(spec, model=model, tokenizer=tokenizer, revision=revision)
