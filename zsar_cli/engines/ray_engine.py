"""The optional Ray Data engine (`pip install 'zsar[ray]'`, `--engine ray`).

`encode`: input a `frames` artifact (a Parquet file or a folder of part files), output an
`embeddings` artifact: `read (one task per part file, streaming record batches through the
artifact layer) → map_batches(actors that each load the encoder once; one GPU per actor when CUDA
is used) → the driver writes through ArtifactWriter`. (Not `ray.data.read_parquet`: its threaded
file listing imports fsspec's HTTP filesystem from several threads at once, which fails at random
when aiohttp is absent, as it is beside torch's fsspec; and zsar's reader validates the kind.)

`extract-frames`: input videos (files, folders, list files), output a `frames` artifact:
`ray.data.from_items(videos, one block per video) → map_batches(one task per video, decoding with
the stage's own functions) → the driver writes through ArtifactWriter`.

Both compute with the local engine's functions (`encode_frames_table`, `iter_frame_tables`), keep
the input order (`preserve_order`), and write through the artifact layer with the same config,
upstream keys and metadata, so the output equals the local engine's row for row and carries the
same cache key (a Ray output is skipped by a later local run with the same settings, and the
reverse). Rows stream back through the driver, which also gives an atomic single-file output; a
run that fails leaves no partial file, but there are no per-batch checkpoints (Ray retries failed
tasks itself).

Paths (videos, frames parts) must be readable from every node, and zsar installed on every node.
Ray is imported inside functions only: zsar works without it. The model stages (query-lvlm,
select-tokens) and localize run on Ray through `zsar_cli.engines.ray_models`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from zsar_cli.artifacts import STDIO, ArtifactWriter, read_artifact
from zsar_cli.backends import revision_key
from zsar_cli.errors import ConfigError, InputError, ModelError, ZsarError
from zsar_cli.outputs import output_lock
from zsar_cli.quiet import bars_wanted, verbose
from zsar_cli.stages.encode_config import EncodeConfig
from zsar_cli.stages.extract_frames_config import ExtractConfig

# Rows per model call of an actor, as the local engine's runner uses per input batch.
MIN_ENCODE_ROWS = 64
# Read tasks reserve no CPU: actors hold theirs for the whole run, and a read that waited for
# one would deadlock the pipeline (reading is light next to encoding, and Ray Data's
# backpressure still bounds how far it runs ahead).
READ_CPUS = 0.0


def require_ray() -> Any:
    """The `ray` module, or one clear line saying how to get it."""
    try:
        import ray
        import ray.data  # the extra installs both; fail here, not mid-run
    except ImportError:
        raise ConfigError(
            "--engine ray needs Ray, which is not installed: pip install 'zsar[ray]'"
        ) from None
    return ray


@contextlib.contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None, quiet_workers: bool = False
) -> Iterator[Any]:
    """Use the running Ray, or connect to `address`, or start a local instance (then stop it).

    Without `address`, Ray itself honours RAY_ADDRESS; otherwise it starts on this machine with
    `num_cpus` (default: all cores). `quiet_workers` keeps worker output off the driver's stdout
    (needed when the artifact itself goes to stdout).
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"log_to_driver": not quiet_workers}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options.update(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False)
    if not verbose():  # "Started a local Ray instance", Ray Data's plans and hints (issue 16.7)
        options.update(logging_level=logging.ERROR)
    with _native_stderr_quiet():
        try:
            ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "a local instance"
            raise ConfigError(f"--ray-address {where}: cannot start or reach Ray ({exc})") from None
        try:
            yield ray
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """Ray's C++ core writes its warnings (e.g. about actor constructor arguments that Ray Data
    itself puts in the object store) straight to file descriptor 2, past Python's logging. When
    nobody watches stderr (not a terminal, no ZSAR_VERBOSE) that descriptor points at the null
    device while Ray runs; zsar's own lines are printed after the run."""
    if bars_wanted() or verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _zsar_cause(exc: BaseException, ray: Any) -> ZsarError | None:
    """The ZsarError a remote task raised, unwrapped from Ray's exception layers."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ray.exceptions.RayTaskError):
            current = current.cause
            continue
        if isinstance(current, ZsarError):
            return current
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _ray_run(ray: Any, progress: bool) -> Iterator[None]:
    """Ordered execution (rows in input order) and user errors as ZsarError, not Ray tracebacks."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress
    loggers = contextlib.ExitStack()
    if not verbose():
        # Ray Data logs its plan, hints and, for a failed task, the whole traceback; zsar
        # reports the failure itself, in one line (issue 16.7).
        for name in ("ray", "ray.data"):
            logger = logging.getLogger(name)
            loggers.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.CRITICAL)
    try:
        with loggers:
            yield
    except Exception as exc:
        # A remote ZsarError arrives as a RayTaskError subclass of it whose text is a traceback.
        cause = _zsar_cause(exc, ray)
        if cause is None or cause is exc:
            raise
        raise type(cause)(*cause.args) from None
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


@dataclass
class _Tally:
    """Videos, failures and rows seen in a stream of output tables (for the run summary)."""

    frames: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    rows: int = 0

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        ids = table.column("video_id").to_pylist()
        errs = table.column("error").to_pylist()
        for video_id, error in zip(ids, errs, strict=True):
            self.frames.setdefault(video_id, 0)
            if error is None:
                self.frames[video_id] += 1
            else:
                self.errors.setdefault(video_id, error)

    @classmethod
    def of(cls, path: str, kind: str) -> _Tally:
        tally = cls()
        tally.add(read_artifact(path, kind, columns=["video_id", "error"]).table)
        return tally


def _input_files(source: str) -> list[str]:
    """The Parquet files of an input, in the order the artifact layer reads them."""
    if source == STDIO:
        raise ConfigError(
            "--engine ray reads its input from files: give a .parquet file or a folder of parts, "
            "not - (stdin)"
        )
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_dir():
        return [str(path.resolve())]
    # As artifacts.read_artifact: hidden entries are temp files and checkpoints, never data.
    parts = sorted(
        p for p in path.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")
    )
    if not parts:
        raise InputError(f"{path}: folder holds no .parquet part files")
    return [str(p.resolve()) for p in parts]


# ---------------------------------------------------------------------------------------------
# encode


def _load_encoder(config: EncodeConfig) -> Any:
    from zsar_cli.stages.encode import load_model

    encoder = load_model(config.model, config.device, config.precision, config.batch_size)
    if config.patch_tokens and getattr(encoder, "patch_grid", None) is None:
        raise ModelError(f"--patch-tokens: {config.model} has no patch grid (needs a ViT)")
    return encoder


def _read_frames(batch: pa.Table, rows: int) -> Iterator[pa.Table]:
    """One read task per part file: its record batches, in order, as they are read."""
    from zsar_cli.artifacts import iter_batches

    for path in batch.column("file").to_pylist():
        _, batches = iter_batches(path, "frames", rows)
        for record_batch in batches:
            yield pa.Table.from_batches([record_batch])


def _encoder_facts(config: EncodeConfig) -> dict[str, Any]:
    """Runs as one Ray task, on the hardware the actors get: the output's model metadata."""
    from zsar_cli.stages.encode import encoder_metadata

    return encoder_metadata(_load_encoder(config), config)


class EncodeActor:
    """One Ray actor: loads the encoder once, then embeds the batches of frames it is given."""

    def __init__(self, config: EncodeConfig, encoding: str) -> None:
        self.config = config
        self.encoding = encoding
        self.encoder = _load_encoder(config)

    def __call__(self, frames: pa.Table) -> pa.Table:
        from zsar_cli.stages.encode import encode_frames_table

        return encode_frames_table(frames, self.encoder, self.encoding, self.config)


def _gpus_per_actor(ray: Any, device: str, per_actor: float) -> float:
    """GPUs each actor asks for: none on cpu; `per_actor` on cuda, or on auto when the cluster
    has GPUs (actors, not the driver, hold the models, so the cluster decides, not this host)."""
    if device == "cpu":
        return 0.0
    have = float(ray.cluster_resources().get("GPU", 0.0))
    if device.startswith("cuda"):
        if have == 0:
            raise ConfigError(f"--device {device}: the Ray cluster has no GPUs")
        return per_actor
    return per_actor if have > 0 else 0.0


def _default_actors(ray: Any, gpus: float, cpus_each: float) -> int:
    """One actor per GPU; without GPUs, one per `cpus_each` CPUs."""
    resources = ray.cluster_resources()
    if gpus:
        return max(1, int(resources.get("GPU", 0.0) // gpus))
    return max(1, int(resources.get("CPU", 1.0) // cpus_each))


def encode_with_ray(
    frames: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: EncodeConfig,
    *,
    address: str | None = None,
    num_gpus_per_actor: float = 1.0,
    num_cpus_per_actor: float = 1.0,
    concurrency: int | None = None,
    num_cpus: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> Any:
    """`frames` artifact → `embeddings` artifact on Ray; returns the stage's EncodeSummary.

    `concurrency` actors (default: one per GPU, or one per `num_cpus_per_actor` CPUs without
    GPUs) each load the model once. Skips an output that is already complete with the same
    settings; refuses one made with other settings unless `force`.
    """
    from zsar_cli.images import image_encoding
    from zsar_cli.runner import shard_batches
    from zsar_cli.sharding import plan_output
    from zsar_cli.stages.encode import EncodeSummary, Timings

    cfg = config.validated()
    source = str(frames)
    files = _input_files(source)
    # The same upstream key as the local engine (a folder of parts stands for all its parts).
    meta, upstream_key, _ = shard_batches(source, "frames", None)
    upstream = [upstream_key, *revision_key(cfg.model)]
    provenance = cfg.provenance()
    target = str(output)
    # The output's lock is held for the whole run, as the local engine holds it: a folder
    # that cannot take the output is refused before any work, and a second run waits.
    with output_lock(target):
        plan = plan_output(target, "embeddings", provenance, upstream, force)
        if plan.up_to_date:
            tally = _Tally.of(target, "embeddings")
            return EncodeSummary(
                len(tally.frames), len(tally.errors), tally.rows, plan.cache_key, Timings(), True
            )
        encoding = image_encoding(meta.extra)
        rows = max(cfg.batch_size, MIN_ENCODE_ROWS)
        tally = _Tally()
        with ray_session(address, num_cpus, quiet_workers=target == STDIO) as ray:
            gpus = _gpus_per_actor(ray, cfg.device, num_gpus_per_actor)
            # Inside an actor Ray exposes only its own GPU(s), so the device is plain "cuda".
            actor_cfg = replace(cfg, device="cuda" if gpus else "cpu")
            if concurrency is None:
                concurrency = _default_actors(ray, gpus, num_cpus_per_actor)
            resources_each = {"num_cpus": num_cpus_per_actor, "num_gpus": gpus or None}
            with _ray_run(ray, progress):
                # One task first: checks the model spec before any actor starts, and gives the
                # output's metadata from the hardware the actors will use.
                facts = ray.remote(_encoder_facts).options(**resources_each).remote(actor_cfg)
                extra = ray.get(facts)
                parts = [{"file": f} for f in files]
                dataset = ray.data.from_items(parts, override_num_blocks=len(parts)).map_batches(
                    _read_frames,
                    fn_kwargs={"rows": rows},
                    batch_size=1,
                    batch_format="pyarrow",
                    num_cpus=READ_CPUS,
                )
                dataset = dataset.map_batches(
                    EncodeActor,
                    fn_constructor_kwargs={"config": actor_cfg, "encoding": encoding},
                    batch_size=rows,
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=concurrency),
                    **resources_each,
                )
                with ArtifactWriter(target, "embeddings", provenance, upstream, extra) as writer:
                    for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                        tally.add(table)
                        writer.write(table)
        return EncodeSummary(
            len(tally.frames), len(tally.errors), tally.rows, writer.cache_key, Timings()
        )

    # ---------------------------------------------------------------------------------------------
    # extract-frames


def _extract_videos(batch: pa.Table, config: ExtractConfig) -> Iterator[pa.Table]:
    """One Ray task's videos (one per block), streamed out in the stage's own chunks."""
    from zsar_cli.stages.extract_frames import VideoInput, iter_frame_tables

    for row in batch.to_pylist():
        video = VideoInput(
            Path(row["path"]),
            row["video_id"],
            row["label"],
            row.get("start"),
            row.get("end"),
            row.get("error"),
        )
        yield from iter_frame_tables([video], config)


def extract_with_ray(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    config: ExtractConfig,
    *,
    videos: Sequence[Any] | None = None,
    address: str | None = None,
    concurrency: int | None = None,
    num_cpus: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> Any:
    """Videos → `frames` artifact on Ray, one task per video; returns the stage's ExtractSummary.

    `videos` (already resolved VideoInput items) replaces `inputs` when given. A video that fails
    is an error row, exactly as with the local engine.
    """
    from zsar_cli.sharding import plan_output
    from zsar_cli.stages.extract_frames import (
        ExtractSummary,
        frames_metadata,
        inputs_fingerprint,
        resolve_inputs,
    )

    # Ray's tasks are the parallelism: each decodes one video on its own.
    cfg = replace(config.validated(), workers=1)
    videos = list(videos) if videos is not None else resolve_inputs(inputs, cfg.root)
    upstream = [inputs_fingerprint(videos)]
    provenance = cfg.provenance()
    extra = frames_metadata(cfg)
    target = str(output)
    # The output's lock is held for the whole run, as the local engine holds it: a folder
    # that cannot take the output is refused before any work, and a second run waits.
    with output_lock(target):
        plan = plan_output(target, "frames", provenance, upstream, force)

        def summary(tally: _Tally, key: str, skipped: bool = False) -> ExtractSummary:
            errors = [
                (v.video_id, tally.errors[v.video_id]) for v in videos if v.video_id in tally.errors
            ]
            frames = sum(tally.frames.values())
            return ExtractSummary(len(videos), len(errors), frames, errors, key, skipped)

        if plan.up_to_date:
            return summary(_Tally.of(target, "frames"), plan.cache_key, skipped=True)
        tally = _Tally()
        if not videos:
            with ArtifactWriter(target, "frames", provenance, upstream, extra) as writer:
                pass
            return summary(tally, writer.cache_key)
        items = [
            {
                "path": str(v.path),
                "video_id": v.video_id,
                "label": v.label,
                "start": v.start,
                "end": v.end,
                "error": v.error,
            }
            for v in videos
        ]
        with (
            ray_session(address, num_cpus, quiet_workers=target == STDIO) as ray,
            _ray_run(ray, progress),
        ):
            # One block per video, so each map task decodes one video.
            dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                _extract_videos,
                fn_kwargs={"config": cfg},
                batch_size=1,
                batch_format="pyarrow",
                num_cpus=1,
                # Without a cap Ray runs as many tasks as the cluster has CPUs.
                **({"concurrency": concurrency} if concurrency else {}),
            )
            with ArtifactWriter(target, "frames", provenance, upstream, extra) as writer:
                for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                    tally.add(table)
                    writer.write(table)
        return summary(tally, writer.cache_key)
