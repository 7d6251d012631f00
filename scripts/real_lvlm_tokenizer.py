"""The tokenizer of the real-size random-init LVLMs (scripts/build_real_lvlms.py): byte-level BPE
trained here, nothing downloaded, so questions tokenize into ordinary word pieces."""

from __future__ import annotations

from typing import Any

BPE_VOCAB = 8192


def corpus() -> list[str]:
    """English glosses (timm ships WordNet definitions of the ImageNet synsets) and zsar's own
    prompt wording, so questions tokenize into ordinary word pieces."""
    from importlib import resources

    from zsar_cli import prompts
    from zsar_cli.synthetic import LABELS, world_descriptions

    glosses = (
        resources.files("timm.data._info")
        .joinpath("imagenet_synset_to_definition.txt")
        .read_text(encoding="utf-8")
    )
    lines = [line.partition("\t")[2] for line in glosses.splitlines() if "\t" in line]
    ours = [prompts.CHOICE_INSTRUCTION, *prompts.VIDEO_TEMPLATES]
    for d in world_descriptions():
        ours.append(
            prompts.ZEAL_FRAME_PROMPT.format(label=d["label"], question=d["start_question"])
        )
        ours.append(prompts.ZEAL_FRAME_PROMPT.format(label=d["label"], question=d["end_question"]))
        ours.append(d["description"])
    ours += [f"Is there {label} in this frame? Yes. No. yes no YES NO" for label in LABELS]
    return lines + ours * 20


def train_tokenizer(specials: list[str], pad: str, eos: str, bos: str | None = None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=pad,
        eos_token=eos,
        bos_token=bos,
        unk_token=None,
        additional_special_tokens=[s for s in specials if s not in (pad, eos, bos)],
    )
