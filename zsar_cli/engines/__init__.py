"""Execution engines: how a stage's work is spread, never what it computes.

- `local` (default): the stage's own `run()` in this process (threads for decoding, `--shard`
  for job arrays, per-batch checkpoints).
- `ray`: the optional Ray Data engine (`pip install 'zsar[ray]'`, zsar_cli.engines.ray_engine):
  `read → map_batches (GPU actors for model stages) → write` on a local or existing Ray cluster.
  It calls the same stage functions and writes through the same artifact layer, so its output
  equals the local engine's row for row, with the same provenance and cache key.

The per-video model stages (query-lvlm, select-tokens) describe their work on one video as a
`VideoTask` and hand it to an engine's `executor`: the local one runs it in this process (one
model, loaded on the first video), the Ray one on actors that each load the model once, with
the runner (zsar_cli.runner.run_stage) in charge on the driver either way: the same part names,
lock, up-to-date check, per-video checkpoints and resume, so a Ray run can resume a local one.

This module is light (no Ray import): the CLI reads the options and checks the choice here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import typer

from zsar_cli.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from zsar_cli.artifacts import ArtifactMeta
    from zsar_cli.runner import Unit
    from zsar_cli.sharding import Shard

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


@dataclass(frozen=True)
class Engine:
    """Where a stage's work runs: `local` (this process) or `ray` (actors on a Ray cluster at
    `address`; None: RAY_ADDRESS, else a local instance). `actors`: how many (default one per
    GPU, or one per `cpus_per_actor` CPUs without GPUs); each model actor takes
    `gpus_per_actor` GPUs where the cluster has GPUs and the work runs a local model."""

    name: str = DEFAULT_ENGINE
    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float = 1.0
    cpus_per_actor: float = 1.0

    @property
    def ray(self) -> bool:
        return self.name == "ray"


LOCAL = Engine()


def engine_of(name: str, shard: str | None = None, ray_address: str | None = None) -> Engine:
    """The CLI's --engine/--ray-address as an Engine (checked as `check_engine` does)."""
    return Engine(check_engine(name, shard, ray_address), ray_address)


class VideoTask(Protocol):
    """One stage's work on one video, in a form an engine can ship to a worker: a picklable
    value whose `load()` runs in the worker (the model is loaded there, once)."""

    @property
    def uses_gpu(self) -> bool:
        """Whether the worker's model wants a GPU (false for a served model or no model)."""
        ...

    def on_device(self, device: str) -> VideoTask:
        """The task with the model placed on `device` (Ray: "cuda" for an actor given a GPU)."""
        ...

    def load(self) -> Any:
        """The model (or whatever the work needs that is expensive to make), once per worker."""
        ...

    def facts(self, model: Any) -> dict[str, Any]:
        """Output metadata that only the loaded model knows (e.g. its resolved spec)."""
        ...

    def __call__(self, model: Any, video: pa.Table) -> pa.Table:
        """The output rows of one video (its input rows, in order)."""
        ...


class Executor(Protocol):
    def units(
        self, source: str, kind: str | tuple[str, ...], shard: Shard | None
    ) -> tuple[ArtifactMeta, str, Iterator[Unit]]:
        """(input meta, upstream key, one unit per video) of an input artifact."""
        ...

    def runner_args(self, task: VideoTask) -> dict[str, Any]:
        """`work=` or `stream=` for run_stage."""
        ...

    def facts(self, task: VideoTask) -> dict[str, Any]:
        """task.facts of a loaded model (loading one only if no video loaded it yet)."""
        ...


class LocalExecutor:
    """The work in this process: the model loaded on the first video (or `model`, given)."""

    def __init__(self, model: Any = None) -> None:
        self.model = model

    def units(
        self, source: str, kind: str | tuple[str, ...], shard: Shard | None
    ) -> tuple[ArtifactMeta, str, Iterator[Unit]]:
        from zsar_cli.runner import artifact_units

        return artifact_units(source, kind, shard)

    def loaded(self, task: VideoTask) -> Any:
        if self.model is None:
            self.model = task.load()
        return self.model

    def runner_args(self, task: VideoTask) -> dict[str, Any]:
        work: Callable[[Unit], pa.Table] = lambda unit: task(self.loaded(task), unit.data)  # noqa: E731
        return {"work": work}

    def facts(self, task: VideoTask) -> dict[str, Any]:
        return task.facts(self.loaded(task))


@contextlib.contextmanager
def executor(engine: Engine | None, model: Any = None, output: str = "") -> Iterator[Executor]:
    """The executor of `engine` for the duration of one stage run (Ray: started on first use,
    stopped at the end if this run started it; its workers' prints kept off stdout when the
    artifact itself goes there, `output` "-")."""
    if engine is None or not engine.ray:
        yield LocalExecutor(model)
        return
    if model is not None:
        raise ConfigError("--engine ray loads the model in its actors; do not pass a loaded one")
    from zsar_cli.engines.ray_models import RayExecutor

    with RayExecutor(engine, quiet_workers=output == "-") as ray_executor:
        yield ray_executor
