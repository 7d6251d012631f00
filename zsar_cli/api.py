"""The library face of the stages: one plain function per stage, options as keyword arguments.

    import zsar_cli as zs
    zs.extract_frames("videos/", "frames.parquet", num_frames=8)
    zs.encode("frames.parquet", "emb.parquet", model="builtin:world-clip")
    preds = zs.classify("emb.parquet", labels="labels.txt")   # a pyarrow Table of predictions

Each function builds the stage's validated Config from its keyword arguments (named like the
config fields, i.e. the CLI options with underscores; nested configs such as the prompt
settings are flattened) and calls the same `run` the command calls, so a library run and a CLI
run with the same settings write the same artifact with the same cache key. An unknown keyword
is a ConfigError listing the valid ones. These are imported lazily by `zsar_cli.__getattr__`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zsar_cli.errors import ConfigError

PathLike = str | Path


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def build_config(cls: type, options: dict[str, Any], what: str) -> Any:
    """`cls(**options)`, with the fields of nested config dataclasses given flat."""
    import typing

    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    rest = dict(options)
    for name in _fields(cls):
        nested = hints.get(name)
        if isinstance(nested, type) and dataclasses.is_dataclass(nested):
            mine = {k: rest.pop(k) for k in list(rest) if k in _fields(nested)}
            if name in rest:
                kwargs[name] = rest.pop(name)
            elif mine:
                kwargs[name] = build_config(nested, mine, what)
        elif name in rest:
            kwargs[name] = rest.pop(name)
    if rest:
        valid = sorted(
            n
            for n in _fields(cls)
            if not (isinstance(hints.get(n), type) and dataclasses.is_dataclass(hints.get(n)))
        )
        for _n, t in hints.items():
            if isinstance(t, type) and dataclasses.is_dataclass(t):
                valid += sorted(_fields(t))
        raise ConfigError(
            f"{what}: unknown option(s) {', '.join(sorted(rest))}; valid: {', '.join(valid)}"
        )
    return cls(**kwargs)


def _shard(shard: Any) -> Any:
    from zsar_cli.sharding import Shard, parse_shard

    return shard if shard is None or isinstance(shard, Shard) else parse_shard(str(shard))


def _listed(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    if isinstance(inputs, (str, Path)):
        return [os.fspath(inputs)]
    return [os.fspath(i) for i in inputs]


def extract_frames(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    shard: Any = None,
    force: bool = False,
    **options: Any,
) -> Any:
    """Videos, folders or list files → a `frames` artifact; returns the run's summary."""
    from zsar_cli.stages import extract_frames as stage

    config = build_config(stage.ExtractConfig, options, "extract_frames")
    return stage.run(_listed(inputs), output, config, shard=_shard(shard), force=force)


def encode(
    frames: PathLike, output: PathLike, *, shard: Any = None, force: bool = False, **options: Any
) -> Any:
    """A `frames` artifact → an `embeddings` artifact (CLIP); returns the run's summary."""
    from zsar_cli.stages import encode as stage
    from zsar_cli.stages.encode_config import EncodeConfig

    config = build_config(EncodeConfig, options, "encode")
    return stage.run(frames, output, config, shard=_shard(shard), force=force)


def classify(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike | None = None,
    *,
    labels: PathLike,
    force: bool = False,
    **options: Any,
) -> Any:
    """Rank `labels` for every video (or frames/embeddings artifact); returns the predictions
    as a pyarrow Table (and writes them to `output` when given)."""
    from zsar_cli.stages import classify as stage
    from zsar_cli.stages.classify_config import ClassifyConfig

    config = build_config(ClassifyConfig, options, "classify")
    summary = stage.classify(_listed(inputs), labels, config, output=output, force=force)
    return stage.predictions_table(summary.results)


def adapt(
    support: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    force: bool = False,
    **options: Any,
) -> Any:
    """Labelled support clips (list files, or a frames/embeddings artifact with labels) → an
    `adapter` artifact for `classify(..., adapter=...)`; returns the run's summary."""
    from zsar_cli.stages import adapt as stage

    config = build_config(stage.AdaptConfig, options, "adapt")
    return stage.adapt(_listed(support), output, config, force=force)


def query_lvlm(
    frames: PathLike, output: PathLike, *, shard: Any = None, force: bool = False, **options: Any
) -> Any:
    """A `frames` artifact → an `answers` artifact (yes/no, choice or generated answers)."""
    from zsar_cli.stages import query_lvlm as stage

    config = build_config(stage.QueryConfig, options, "query_lvlm")
    return stage.run(frames, output, config, shard=_shard(shard), force=force)


def select_tokens(
    inputs: PathLike, output: PathLike, *, shard: Any = None, force: bool = False, **options: Any
) -> Any:
    """A `frames` (or `embeddings`, scorer clip) artifact → a Self-ReS `tokens` artifact."""
    from zsar_cli.stages import select_tokens as stage
    from zsar_cli.stages.select_tokens_config import SelectTokensConfig

    config = build_config(SelectTokensConfig, options, "select_tokens")
    return stage.run(inputs, output, config, shard=_shard(shard), force=force)


def localize(
    output: PathLike | None = None,
    *,
    embeddings: PathLike | None = None,
    text: PathLike | None = None,
    answers: PathLike | None = None,
    shard: Any = None,
    force: bool = False,
    **options: Any,
) -> Any:
    """Temporal proposals (ZEAL, CLIP-only) or anomaly frame scores; returns the result."""
    from zsar_cli.stages import localize as stage
    from zsar_cli.stages.localize_config import LocalizeConfig

    config = build_config(LocalizeConfig, options, "localize")
    return stage.run(
        config,
        embeddings=None if embeddings is None else os.fspath(embeddings),
        text=None if text is None else os.fspath(text),
        answers=None if answers is None else os.fspath(answers),
        output=None if output is None else os.fspath(output),
        shard=_shard(shard),
        force=force,
    )


def score(
    predictions: PathLike,
    gt: PathLike | None = None,
    output: PathLike | None = None,
    **options: Any,
) -> Any:
    """Score predictions, intervals or frame scores against ground truth; returns the report
    (and writes a `metrics` artifact to `output` when given)."""
    from zsar_cli.stages import score as stage

    config = build_config(stage.ScoreConfig, options, "score")
    return stage.run(predictions, gt, output, config)


__all__ = [
    "adapt",
    "classify",
    "encode",
    "extract_frames",
    "localize",
    "query_lvlm",
    "score",
    "select_tokens",
]
