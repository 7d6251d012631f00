"""Execution engines: how a stage's work is spread, never what it computes.

- `local` (default): the stage's own `run()` in this process (threads for decoding, `--shard`
  for job arrays, per-batch checkpoints).
- `ray`: the optional Ray Data engine (`pip install 'zsar[ray]'`, zsar_cli.engines.ray_engine):
  `read → map_batches (GPU actors for model stages) → write` on a local or existing Ray cluster.
  It calls the same stage functions and writes through the same artifact layer, so its output
  equals the local engine's row for row, with the same provenance and cache key.

This module is light (no Ray import): the CLI reads the options and checks the choice here.
"""

from __future__ import annotations

import typer

from zsar_cli.errors import ConfigError

ENGINES: tuple[str, ...] = ("local", "ray")
DEFAULT_ENGINE = "local"

ENGINE_OPTION = typer.Option(
    "--engine",
    help="local (this process) or ray (Ray Data on a local or existing cluster; needs "
    "pip install 'zsar[ray]').",
)
RAY_ADDRESS_OPTION = typer.Option(
    "--ray-address",
    help="With --engine ray: an existing cluster (auto, ray://HOST:10001). Default: RAY_ADDRESS "
    "if set, else a new local Ray instance on this machine's cores.",
)


def check_engine(engine: str, shard: str | None = None, ray_address: str | None = None) -> str:
    """The engine name, validated against the options that go with it."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "ray" and shard is not None:
        raise ConfigError(
            "--engine ray parallelises across the cluster itself; drop --shard (shards are for "
            "the local engine in job arrays)"
        )
    if engine != "ray" and ray_address is not None:
        raise ConfigError("--ray-address goes with --engine ray")
    return engine
