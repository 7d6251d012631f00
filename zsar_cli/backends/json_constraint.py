"""Schema-constrained greedy decoding: a transformers logits processor that keeps each row's output
a valid prefix of a `RecordSchema` record and finishes the record within the token budget.

Input: a tokenizer (each token's text is decoded once, `TokenTable`), a `RecordSchema`, the
budget (`max_new_tokens`) and the EOS ids. Output: per row, the JSON text the model wrote, which
`RecordSchema.parse` accepts whatever the weights are (a random-init model included).

How (`RecordMachine`):
- The layout is fixed: `{"name": "…", "items": ["…", "…"], …}`, one space after each colon and
  comma, fields in schema order. Only string contents are free.
- Between strings the next token must be a prefix of the literal that comes next *on a
  shortest tokenization of it* (a small DP per literal), so the layout costs a known number of
  tokens and never drifts into one-character pieces.
- Inside a string a token may hold printable characters other than `"` and `\\` only (so no
  escape is ever needed and no newline appears), must fit the field's character cap, and may not
  start the string with whitespace (nor a question with "?"). A question closes only right after
  a "?"; any string only when non-empty; a list only with min_items..max_items items.
- Budget: `need(state)` is the fewest tokens that still complete the record from a state (the
  literals' shortest tokenizations, a "?" a question lacks, one token per string still empty, the
  items a list lacks, EOS). A token is allowed only if the state it leads to needs no more than
  the tokens then left, so every row emits a complete record and EOS by `max_new_tokens`.
Deterministic: masks depend only on each row's state, and greedy decoding takes the best allowed
token. Batched: one state per row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor

from zsar_cli.backends.text_base import ListField, RecordSchema, StringField

INF = 1 << 30


class BudgetError(ValueError):
    """`max_new_tokens` cannot hold even the shortest record of the schema."""

    def __init__(self, needed: int, budget: int) -> None:
        super().__init__(f"a record needs at least {needed} new tokens; the budget is {budget}")
        self.needed = needed


# ---------------------------------------------------------------------------------------------
# What each token reads as


def token_texts(tokenizer: Any) -> list[str | None]:
    """Each token id's text as it reads after other text; None for special tokens and pieces
    that do not decode to whole characters (one byte of a multi-byte character).

    A token is decoded after an anchor ("a") and the anchor's text removed, because
    SentencePiece-style tokenizers drop a token's leading space when it is decoded alone.
    """
    count = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    special |= set(getattr(tokenizer, "added_tokens_decoder", None) or {})
    anchor_ids = list(tokenizer.encode("a", add_special_tokens=False))
    anchor = tokenizer.decode(
        anchor_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    decoded = tokenizer.batch_decode(
        [[*anchor_ids, i] for i in range(count)],
        skip_special_tokens=False,
        clean_up_tokenization_spaces=False,
    )
    out: list[str | None] = []
    for i, text in enumerate(decoded):
        piece = text[len(anchor) :] if text.startswith(anchor) else ""
        out.append(None if i in special or not piece or "\ufffd" in piece else piece)
    return out


def _string_safe(text: str | None) -> bool:
    """Usable inside a JSON string as it is: printable, and no quote or backslash to escape."""
    return text is not None and text.isprintable() and '"' not in text and "\\" not in text


class TokenTable:
    """Token texts and the per-token features the masks are built from (one tensor each)."""

    def __init__(self, texts: Sequence[str | None], size: int | None = None) -> None:
        self.size = max(size or 0, len(texts))
        self.texts: list[str | None] = [*texts, *[None] * (self.size - len(texts))]
        self.by_text: dict[str, list[int]] = {}
        for i, text in enumerate(self.texts):
            if text is not None:
                self.by_text.setdefault(text, []).append(i)
        self.max_len = max((len(t) for t in self.by_text), default=1)
        plain: list[str] = [t if t is not None and _string_safe(t) else "" for t in self.texts]
        self.length = torch.tensor([len(t) for t in plain], dtype=torch.long)
        self.content = torch.tensor([bool(t) for t in plain], dtype=torch.bool)
        # May open a string: no leading whitespace (so a string is never blank).
        self.lead = torch.tensor([bool(t) and not t[0].isspace() for t in plain])
        starts_q = torch.tensor([t.startswith("?") for t in plain])
        self.ends_q = torch.tensor([t.endswith("?") for t in plain])
        # May open a question: not "?" first either (a question has words before its "?").
        self.lead_q = self.lead & ~starts_q

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, size: int | None = None) -> TokenTable:
        return cls(token_texts(tokenizer), size)

    def mask_of(self, ids: Sequence[int]) -> torch.Tensor:
        mask = torch.zeros(self.size, dtype=torch.bool)
        if ids:
            mask[list(ids)] = True
        return mask


# ---------------------------------------------------------------------------------------------
# The record's layout as a state machine

# A literal's way out: (text still to emit, field it leads to, items finished in that field).
# The field index len(schema.fields) stands for "record closed, EOS next".
Alt = tuple[str, int, int]


@dataclass
class RowState:
    """Where one row is: inside a literal (`alts`, the texts it may still emit) or inside a
    string of `field` (`content` so far; `items` = finished items of a list field)."""

    field: int
    items: int = 0
    content: str | None = None
    alts: list[Alt] = dataclasses.field(default_factory=list)
    done: bool = False
    pieces: list[str] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class RecordMachine:
    """The schema's layout, the token table and the budget: `start()`, `allowed(state, left)`
    (a bool mask over the vocabulary), `advance(state, token)`."""

    def __init__(
        self, schema: RecordSchema, table: TokenTable, max_new_tokens: int, eos_ids: Sequence[int]
    ) -> None:
        self.schema = schema
        self.table = table
        self.fields = schema.fields
        self.end = len(self.fields)
        self.max_new_tokens = max_new_tokens
        if not eos_ids:
            raise ValueError("the tokenizer has no end-of-sequence token")
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self.eos_mask = table.mask_of(sorted(i for i in self.eos_ids if i < table.size))
        self._dp: dict[str, list[int]] = {}
        self._first: dict[str, torch.Tensor] = {}
        self._after: dict[tuple[int, int], int] = {}
        self._check_spellable()
        needed = self.need(self.start())
        if needed > max_new_tokens:
            raise BudgetError(needed, max_new_tokens)

    # -- layout
    def _open(self, i: int) -> str:
        f = self.fields[i]
        return f'"{f.name}": ' + ('["' if isinstance(f, ListField) else '"')

    def _tail(self, i: int) -> str:
        """What follows field i's closing quote (or `]`)."""
        return "}" if i + 1 == self.end else ", " + self._open(i + 1)

    def close_alts(self, i: int, items: int) -> list[Alt]:
        """The literals that may end the current string of field i (`items` finished before it)."""
        f = self.fields[i]
        if isinstance(f, StringField):
            return [('"' + self._tail(i), i + 1, 0)]
        alts: list[Alt] = []
        finished = items + 1
        if finished < f.max_items:
            alts.append(('", "', i, finished))
        if finished >= f.min_items:
            alts.append(('"]' + self._tail(i), i + 1, 0))
        return alts

    def start(self) -> RowState:
        return RowState(field=0, alts=[("{" + self._open(0), 0, 0)])

    # -- costs
    def _spell(self, text: str) -> list[int]:
        """dp[k]: fewest tokens that spell text[k:] (INF if none)."""
        dp = self._dp.get(text)
        if dp is None:
            n = len(text)
            dp = [INF] * (n + 1)
            dp[n] = 0
            for i in range(n - 1, -1, -1):
                for k in range(1, min(self.table.max_len, n - i) + 1):
                    if text[i : i + k] in self.table.by_text and dp[i + k] + 1 < dp[i]:
                        dp[i] = dp[i + k] + 1
            self._dp[text] = dp
        return dp

    def min_tokens(self, text: str) -> int:
        return self._spell(text)[0]

    def first_tokens(self, text: str) -> torch.Tensor:
        """Tokens that begin a shortest spelling of `text`."""
        mask = self._first.get(text)
        if mask is None:
            dp = self._spell(text)
            ids = [
                i
                for k in range(1, min(self.table.max_len, len(text)) + 1)
                if dp[k] + 1 == dp[0]
                for i in self.table.by_text.get(text[:k], ())
            ]
            mask = self._first[text] = self.table.mask_of(ids)
        return mask

    def _string_need(self, i: int, content: str) -> int:
        """Tokens field i's current string still needs before it may close."""
        f = self.fields[i]
        if isinstance(f, StringField) and f.question:
            return 2 if not content else (0 if content.endswith("?") else 1)
        return 0 if content else 1

    def _alt_cost(self, alt: Alt) -> int:
        text, i, items = alt
        return self.min_tokens(text) + self._from(i, items)

    def _from(self, i: int, items: int) -> int:
        """Fewest tokens from the start of a string of field i (`items` finished) to EOS."""
        if i == self.end:
            return 1
        key = (i, items)
        if key not in self._after:
            close = min(self._alt_cost(a) for a in self.close_alts(i, items))
            self._after[key] = self._string_need(i, "") + close
        return self._after[key]

    def need(self, state: RowState) -> int:
        """Fewest tokens that still complete the record and emit EOS from `state`."""
        if state.done:
            return 0
        if state.content is None:
            if state.field == self.end and not state.alts:
                return 1
            return min(self._alt_cost(a) for a in state.alts)
        close = min(self._alt_cost(a) for a in self.close_alts(state.field, state.items))
        return self._string_need(state.field, state.content) + close

    def _check_spellable(self) -> None:
        literals = [self.start().alts[0][0]]
        for i, f in enumerate(self.fields):
            limit = f.max_items if isinstance(f, ListField) else 1
            for items in range(limit):
                literals += [a[0] for a in self.close_alts(i, items)]
        for text in literals:
            if self.min_tokens(text) >= INF:
                raise ValueError(f"the tokenizer cannot spell the record layout ({text!r})")
        t = self.table
        if not bool((t.lead_q & ~t.ends_q & (t.length == 1)).any()):
            raise ValueError("the tokenizer has no one-character token to open a string")
        if "?" not in t.by_text:
            raise ValueError("the tokenizer has no '?' token")

    # -- masks and steps
    def allowed(self, state: RowState, left: int) -> torch.Tensor:
        """Tokens that keep the output a valid record prefix which `left - 1` more tokens (after
        this one) can still complete."""
        t = self.table
        if state.done or (state.content is None and state.field == self.end and not state.alts):
            return self.eos_mask
        mask = torch.zeros(t.size, dtype=torch.bool)
        if state.content is None:
            for alt in state.alts:
                if self._alt_cost(alt) <= left:
                    mask |= self.first_tokens(alt[0])
            return mask
        f = self.fields[state.field]
        content = state.content
        room = f.max_chars - len(content)
        alts = [(a, self._alt_cost(a)) for a in self.close_alts(state.field, state.items)]
        close = min(cost for _, cost in alts)
        opener = t.lead_q if isinstance(f, StringField) and f.question else t.lead
        base = t.content if content else opener
        if isinstance(f, StringField) and f.question:
            if close + 1 <= left - 1:  # a question still lacking its "?" needs one more token
                mask |= base & ~t.ends_q & (t.length <= room - 1)
            if close <= left - 1:
                mask |= base & t.ends_q & (t.length <= room)
            closable = content.endswith("?")
        else:
            if close <= left - 1:
                mask |= base & (t.length <= room)
            closable = bool(content)
        if closable:
            for alt, cost in alts:
                if cost <= left:
                    mask |= self.first_tokens(alt[0])
        return mask

    def advance(self, state: RowState, token: int) -> None:
        """Apply the token the model chose (one `allowed` permitted)."""
        if state.done:
            return
        if state.content is None and state.field == self.end and not state.alts:
            if token not in self.eos_ids:
                raise RuntimeError(f"token {token} after the record is not EOS")
            state.done = True
            return
        text = self.table.texts[token] if 0 <= token < self.table.size else None
        if text is None:
            raise RuntimeError(f"token {token} has no text and is not allowed here")
        if state.content is not None:
            if not text.startswith('"'):
                state.content += text
                state.pieces.append(text)
                return
            state.alts = self.close_alts(state.field, state.items)
            state.content = None
        rest = [(r[len(text) :], i, n) for r, i, n in state.alts if r.startswith(text)]
        if not rest:
            raise RuntimeError(f"token {text!r} does not continue the record layout")
        state.pieces.append(text)
        finished = [a for a in rest if not a[0]]
        if finished:
            _, state.field, state.items = finished[0]
            state.alts = []
            state.content = "" if state.field < self.end else None
        else:
            state.alts = rest


class RecordLogitsProcessor(LogitsProcessor):
    """Masks each row's next-token scores to what `RecordMachine.allowed` permits.

    transformers calls it once per step with the sequences so far; the first call fixes the prompt
    length, and each later call first applies the token chosen at the previous step.
    """

    def __init__(self, machine: RecordMachine, rows: int) -> None:
        self.machine = machine
        self.states = [machine.start() for _ in range(rows)]
        self.prompt_length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        else:
            for state, token in zip(self.states, input_ids[:, -1].tolist(), strict=True):
                self.machine.advance(state, int(token))
        left = self.machine.max_new_tokens - (int(input_ids.shape[1]) - self.prompt_length)
        mask = torch.stack([self.machine.allowed(s, left) for s in self.states])
        width = scores.shape[-1]
        if mask.shape[1] < width:
            mask = torch.nn.functional.pad(mask, (0, width - mask.shape[1]), value=False)
        mask = mask[:, :width].to(scores.device)
        # An allowed token another processor set to -inf stays choosable, so no row is ever left
        # with nothing to pick (argmax over all -inf would take token 0).
        floor = torch.finfo(scores.dtype).min
        out = torch.where(mask, scores.nan_to_num(nan=floor, neginf=floor), float("-inf"))
        return out  # type: ignore[return-value]

    def texts(self) -> list[str]:
        return [s.text for s in self.states]

    def complete(self) -> list[bool]:
        return [s.done or (s.content is None and s.field == self.machine.end) for s in self.states]
