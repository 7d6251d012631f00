"""Reusing work across the questions asked about the same frames (the `hf:` LVLM backend).

Input: prompts already laid out by the processor, as unpadded rows (`Row`: the language model's
input embeddings with image features merged, the position ids, the token ids, where the image
tokens end, and a key naming the images), and the model's decoder and LM head. Output: each
row's next-token logits, plus the decoder state (KV cache, attention mask, next positions) to
continue greedy decoding from.

Two savings, both exact up to float rounding (the parity tests hold p_yes to 1e-5):
- `FeatureCache`: the image features a prompt's images become (vision tower, pixel shuffle /
  anyres packing, projector: whatever the family does before its language model) are kept per
  image set, so `HFLVLM` runs the vision tower once per frame (or clip) per run, however many
  questions and labels are asked about it;
- `plan_groups` + `prefill`: rows with the same images whose token sequences share a prefix that
  holds every image token (chat templates that put the images before the question: Idefics3 /
  SmolVLM, LLaVA-OneVision, Qwen2.5-VL) run that prefix once; its KV cache is copied to each row
  and only the row's own suffix (the question) runs on top of it. Templates that put the images
  after the question (the world LVLM) share nothing causal, so their rows run whole.

Batches mix prefix lengths (groups of different frame sizes) and suffix lengths (questions):
prefixes are left-padded and suffixes right-padded, the 2-D attention mask marks both paddings
and every row keeps its own position ids, so no real token sees a padding token or a shifted
position.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

DEFAULT_CACHE_MB = 256
# Suffix passes are cheap per row (a question's tokens), so they batch wider than whole prompts:
# up to this many times the batch size, within this much copied prefix cache.
SUFFIX_BATCH_FACTOR = 4
SUFFIX_CACHE_BYTES = 256 * 2**20


def images_key(images: Sequence[np.ndarray]) -> bytes:
    """A content hash of a prompt's images (shape, dtype and pixels of each, in order)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(len(images)).encode())
    times = getattr(images, "times", None)  # a Clip: its times shape a native video's prompt
    if times is not None:
        digest.update(("clip" + ",".join(map(repr, times))).encode())
    for image in images:
        array = np.ascontiguousarray(image)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.digest()


class FeatureCache:
    """Image-set key → the features its image tokens receive (tokens × hidden), least recently
    used first out once `max_bytes` is exceeded. `vision_runs` counts the image sets computed."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.entries: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.vision_runs = 0

    def get(self, key: bytes) -> torch.Tensor | None:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        return value

    def put(self, key: bytes, value: torch.Tensor) -> None:
        self.vision_runs += 1
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= old.numel() * old.element_size()
        self.entries[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= dropped.numel() * dropped.element_size()

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        self.entries.clear()
        self.bytes = self.hits = self.vision_runs = 0


# ---------------------------------------------------------------------------------------------
# Rows and groups


# Arguments the multimodal model hands its language model besides `inputs_embeds` that carry no
# image information; anything else (Qwen3-VL's deepstack features) makes features unreusable.
PLAIN_DECODER_ARGS = frozenset(
    {
        "inputs_embeds",
        "attention_mask",
        "position_ids",
        "cache",
        "past_key_values",
        "use_cache",
        "return_dict",
        "output_attentions",
        "output_hidden_states",
        "cache_position",
        "input_ids",
    }
)


class Captured(Exception):
    """Raised by the language-model pre-hook to stop a forward pass once its inputs are known."""


class ReuseBlocked(Exception):
    """Raised when a model turns out to need more than image features to re-enter its language
    model (`HFLVLM.reuse_blocked` says what); the call then runs the model's own forward."""


@dataclass
class Row:
    """One prompt without padding: embeds (n × hidden), positions (n) or (3 × n) for multimodal
    RoPE, token ids (n), the index of its last image token (-1 without images), its image key."""

    embeds: torch.Tensor
    positions: torch.Tensor
    ids: torch.Tensor
    last_image: int
    key: bytes | None

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class Group:
    """Rows answered together: with `prefix` > 0 they share their first `prefix` tokens (all
    their image tokens among them), which run once; with 0 each row runs whole."""

    rows: list[int]
    prefix: int


def common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.shape[0], b.shape[0])
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0, 0]) if differ.numel() else n


def plan_groups(rows: Sequence[Row]) -> list[Group]:
    """Rows with the same image key and a common token prefix covering all their image tokens
    share that prefix; everything else runs whole. Group order follows first appearance."""
    by_key: dict[bytes, list[int]] = {}
    alone: list[int] = []
    for i, row in enumerate(rows):
        if row.key is None or row.last_image < 0:
            alone.append(i)
        else:
            by_key.setdefault(row.key, []).append(i)
    groups: list[Group] = []
    for members in by_key.values():
        if len(members) < 2:
            alone.extend(members)
            continue
        first = rows[members[0]].ids
        shared = min(common_prefix(first, rows[m].ids) for m in members[1:])
        # Every row must keep one token of its own: its logits come from the suffix pass.
        shared = min(shared, *(rows[m].length - 1 for m in members))
        if shared > max(rows[m].last_image for m in members):
            groups.append(Group(members, shared))
        else:
            alone.extend(members)
    if alone:
        groups.append(Group(sorted(alone), 0))
    return groups


# ---------------------------------------------------------------------------------------------
# Running the decoder


@dataclass
class Decoder:
    """The language model (without head) and what calling it needs."""

    model: Any  # the decoder stack: inputs_embeds → last_hidden_state (+ cache)
    head: Any  # the LM head: hidden → logits
    embed_tokens: Any  # token ids → input embeddings
    config: Any  # the text config (cache layer types)

    def __post_init__(self) -> None:
        # transformers 5.x renamed `past_key_values` to `cache`; either is accepted here.
        params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def run(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any | None = None,
    ) -> tuple[torch.Tensor, Any]:
        kwargs = {self.cache_arg: cache} if cache is not None else {}
        out = self.model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **kwargs,
        )
        state = getattr(out, "cache", None)
        if state is None:
            state = getattr(out, "past_key_values", None)
        return out.last_hidden_state, state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden).float()

    def expand(self, cache: Any, index: torch.Tensor) -> Any:
        """A new cache whose row b is row `index[b]` of `cache` (the prefix copied per row)."""
        from transformers import DynamicCache

        data = [
            (keys.index_select(0, index), values.index_select(0, index))
            for keys, values in _kv(cache)
        ]
        return DynamicCache(ddp_cache_data=data, config=self.config)


def _kv(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _stack_embeds(rows: Sequence[torch.Tensor], width: int, left: bool) -> torch.Tensor:
    first = rows[0]
    out = first.new_zeros((len(rows), width, first.shape[-1]))
    for b, row in enumerate(rows):
        n = row.shape[0]
        if left:
            out[b, width - n :] = row
        else:
            out[b, :n] = row
    return out


def _stack_positions(rows: Sequence[torch.Tensor], width: int, left: bool) -> torch.Tensor:
    """(n) rows → B × width; (3 × n) rows → 3 × B × width. Padding positions are 0."""
    first = rows[0]
    lead = tuple(first.shape[:-1])
    out = first.new_zeros((*lead, len(rows), width))
    for b, row in enumerate(rows):
        n = row.shape[-1]
        if left:
            out[..., b, width - n :] = row
        else:
            out[..., b, :n] = row
    return out


def _mask(lengths: Sequence[int], width: int, left: bool, device: torch.device) -> torch.Tensor:
    mask = torch.zeros((len(lengths), width), dtype=torch.long, device=device)
    for b, n in enumerate(lengths):
        if left:
            mask[b, width - n :] = 1
        else:
            mask[b, :n] = 1
    return mask


@dataclass
class Segment:
    """Rows prefilled together: their last-position logits and the state to decode on from."""

    rows: list[int]
    logits: torch.Tensor  # len(rows) × V, float32
    cache: Any
    mask: torch.Tensor  # len(rows) × cached length
    next_positions: torch.Tensor  # (len(rows)) or (3 × len(rows))


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def prefill(
    decoder: Decoder, rows: Sequence[Row], groups: Sequence[Group], batch_size: int
) -> list[Segment]:
    """Run every row up to its next token; rows of a shared group reuse one prefix pass.

    At most `batch_size` whole rows or prefixes per decoder call; suffixes (a question's few
    tokens on a copied prefix cache) go up to `SUFFIX_BATCH_FACTOR`× that many at once, as long
    as their copied caches stay under `SUFFIX_CACHE_BYTES`. Returns segments covering every row
    exactly once."""
    segments: list[Segment] = []
    device = rows[0].embeds.device if rows else torch.device("cpu")
    shared = [g for g in groups if g.prefix > 0]
    for g in groups:
        if g.prefix == 0:
            for part in _chunks(g.rows, batch_size):
                segments.append(_run_whole(decoder, rows, part, device))
    for start in range(0, len(shared), batch_size):
        segments.extend(_run_shared(decoder, rows, shared[start : start + batch_size], batch_size))
    return segments


def _run_whole(
    decoder: Decoder, rows: Sequence[Row], part: list[int], device: torch.device
) -> Segment:
    width = max(rows[i].length for i in part)
    embeds = _stack_embeds([rows[i].embeds for i in part], width, left=True)
    positions = _stack_positions([rows[i].positions for i in part], width, left=True)
    mask = _mask([rows[i].length for i in part], width, left=True, device=device)
    hidden, cache = decoder.run(embeds, mask, positions)
    logits = decoder.logits(hidden[:, -1])
    return Segment(part, logits, cache, mask, positions[..., -1] + 1)


def _run_shared(
    decoder: Decoder, rows: Sequence[Row], groups: Sequence[Group], batch_size: int
) -> list[Segment]:
    device = rows[groups[0].rows[0]].embeds.device
    heads = [rows[g.rows[0]] for g in groups]
    lengths = [g.prefix for g in groups]
    width = max(lengths)
    embeds = _stack_embeds(
        [h.embeds[: g.prefix] for h, g in zip(heads, groups, strict=True)], width, True
    )
    positions = _stack_positions(
        [h.positions[..., : g.prefix] for h, g in zip(heads, groups, strict=True)], width, True
    )
    prefix_mask = _mask(lengths, width, left=True, device=device)
    _, prefix_cache = decoder.run(embeds, prefix_mask, positions)
    members = [(gi, r) for gi, g in enumerate(groups) for r in g.rows]
    per_row = sum(k[:1].numel() * k.element_size() * 2 for k, _ in _kv(prefix_cache))
    step = max(1, min(batch_size * SUFFIX_BATCH_FACTOR, SUFFIX_CACHE_BYTES // max(1, per_row)))
    segments = []
    for start in range(0, len(members), step):
        part = members[start : start + step]
        owner = torch.tensor([gi for gi, _ in part], device=device)
        suffix_embeds, suffix_positions, suffix_lengths = [], [], []
        for gi, r in part:
            p = groups[gi].prefix
            suffix_embeds.append(rows[r].embeds[p:])
            suffix_positions.append(rows[r].positions[..., p:])
            suffix_lengths.append(rows[r].length - p)
        s_width = max(suffix_lengths)
        cache = decoder.expand(prefix_cache, owner)
        mask = torch.cat(
            [prefix_mask.index_select(0, owner), _mask(suffix_lengths, s_width, False, device)], 1
        )
        hidden, cache = decoder.run(
            _stack_embeds(suffix_embeds, s_width, left=False),
            mask,
            _stack_positions(suffix_positions, s_width, left=False),
            cache,
        )
        last = torch.tensor([n - 1 for n in suffix_lengths], device=device)
        picked = hidden[torch.arange(len(part), device=device), last]
        next_positions = torch.stack([pos[..., -1] + 1 for pos in suffix_positions], dim=-1)
        segments.append(
            Segment([r for _, r in part], decoder.logits(picked), cache, mask, next_positions)
        )
    return segments


def greedy_decode(
    decoder: Decoder,
    segment: Segment,
    max_new_tokens: int,
    eos_ids: Sequence[int],
    pad_id: int,
) -> list[list[int]]:
    """Greedy continuation of a prefilled segment: per row, the new token ids up to (not
    including) the first end token, at most `max_new_tokens`."""
    logits, cache, mask = segment.logits, segment.cache, segment.mask
    positions = segment.next_positions
    rows = len(segment.rows)
    device = logits.device
    eos = torch.tensor(sorted(set(eos_ids)), device=device, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    out: list[list[int]] = [[] for _ in range(rows)]
    for step in range(max_new_tokens):
        token = logits.argmax(-1)
        finished = torch.isin(token, eos) if eos.numel() else torch.zeros_like(done)
        for b in range(rows):
            if not done[b] and not finished[b]:
                out[b].append(int(token[b]))
        done |= finished
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        token = torch.where(done, torch.full_like(token, pad_id), token)
        mask = torch.cat([mask, mask.new_ones((rows, 1))], 1)
        hidden, cache = decoder.run(
            decoder.embed_tokens(token[:, None]), mask, positions[..., None], cache
        )
        positions = positions + 1
        logits = decoder.logits(hidden[:, -1])
    return out
