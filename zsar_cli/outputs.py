"""Writing outputs: the one overwrite policy, exclusive output locks, atomic writes.

Every file a command writes — Parquet artifacts, JSON, HTML, text — goes through this module, so
the rules hold everywhere instead of per command:

- an output is never written over one of the run's own inputs, not even with `--force`
  (inputs are noted as they are opened: `note_input`, scoped per command or stage run by
  `io_scope`);
- an existing output made with other settings (another cache key, or other content for a file
  without provenance) is refused unless `--force`; one with the same settings is up to date;
- an exclusive lock (`.NAME.lock` beside the output, `flock`) is held from the up-to-date check
  to the final rename, so a second run to the same output waits, then finds it up to date,
  and nothing is left behind;
- the output appears under its name only when complete (temp file + `os.replace`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from zsar_cli.errors import CacheMismatchError, ConfigError, InputError, OutputError

STDIO = "-"
F = TypeVar("F", bound=Callable[..., Any])

# ---------------------------------------------------------------------------------------------
# The run's inputs


# A stack of scopes; each holds the real paths of the files its run has opened as inputs. A
# nested stage run (classify composing encode) sees its callers' inputs too.
# Outside any scope nothing is noted: every command and every stage's run() opens one.
_INPUTS: ContextVar[tuple[set[str], ...]] = ContextVar("zsar_inputs", default=())


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def note_input(path: str | os.PathLike[str], parts: bool = False) -> None:
    """Record that the current run reads `path`; `parts`: a folder of artifact part files, in
    which no new .parquet may be written either (it would become one of its parts)."""
    if os.fspath(path) in (STDIO, ""):
        return
    scopes = _INPUTS.get()
    if scopes:
        scopes[-1].add(_real(path) + (os.sep if parts else ""))


@contextlib.contextmanager
def io_scope() -> Iterator[None]:
    """The inputs noted inside belong to one run; they are forgotten when it ends."""
    token = _INPUTS.set((*_INPUTS.get(), set()))
    try:
        yield
    finally:
        _INPUTS.reset(token)


def scoped(run: F) -> F:
    """Decorate a stage's run(): the inputs it reads are those its outputs may not replace."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with io_scope():
            return run(*args, **kwargs)

    return cast(F, wrapper)


def _noted_inputs() -> set[str]:
    return set().union(*_INPUTS.get())


def check_output_path(output: str | os.PathLike[str], option: str = "-o") -> Path:
    """The target of an output option, refused in one line when it is unusable or an input."""
    text = os.fspath(output)
    if not text.strip():
        raise ConfigError(f"{option} '': give an output path (or - for stdout)")
    target = Path(text)
    real = _real(target)
    for noted in _noted_inputs():
        source = noted.rstrip(os.sep) or os.sep
        inside = noted.endswith(os.sep) and real.startswith(source + os.sep)
        if real == source or (inside and target.suffix == ".parquet"):
            raise InputError(
                f"{text}: is an input of this run ({source}); refusing to write over it, even "
                "with --force; choose another output"
            )
    return target


# ---------------------------------------------------------------------------------------------
# What the file system refused, in one line


def file_in_the_way(path: str | os.PathLike[str]) -> str | None:
    """The first part of `path` that exists and is not a folder (what ENOTDIR, or mkdir's
    EEXIST, is about: mkdir names the file, not the output that wanted a folder there)."""
    parts = os.path.normpath(os.fspath(path)).split(os.sep)
    for i in range(1, len(parts) + 1):
        prefix = os.sep.join(parts[:i]) or os.sep
        if os.path.lexists(prefix) and not os.path.isdir(prefix):
            return prefix
    return None


_HIDDEN_RE = re.compile(r"^\.(.+?)(?:\.lock|\.tmp-\d+-[0-9a-f]+)$")
_CHECKPOINTS_RE = re.compile(r"^\.(.+?)\.ckpt-[0-9a-f]+$")


def output_of(path: str | os.PathLike[str]) -> str | None:
    """The output that a hidden `.NAME.lock` or `.NAME.tmp-PID-HEX` beside it, or a file in its
    checkpoint folder `.NAME.ckpt-KEY/`, belongs to."""
    head, tail = os.path.split(os.fspath(path))
    match = _HIDDEN_RE.match(tail)
    if match:
        inner = os.path.join(head, match.group(1))
        return output_of(inner) or inner  # the temp file of a checkpoint: its output
    parent, folder = os.path.split(head)
    checkpoints = _CHECKPOINTS_RE.match(folder)
    return os.path.join(parent, checkpoints.group(1)) if checkpoints else None


def os_refusal(exc: OSError, output: str | os.PathLike[str] | None = None) -> str:
    """One line for an OSError: the file it is about (the output, never the hidden lock or temp
    file beside it) and, for the usual refusals (permissions, a read-only file system, a file
    where a folder should be, a full disk), why in plain words."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None and output is None:
        return reason
    name = os.fsdecode(exc.filename) if exc.filename is not None else os.fspath(output or "")
    hidden = output_of(name)
    writing = hidden is not None or output is not None
    shown = os.fspath(output) if output is not None else hidden or name
    folder = os.path.dirname(shown) or "."
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        if writing:
            return f"{shown}: cannot write it: permission denied in folder {folder}"
        return f"{shown}: permission denied (check the permissions of the file and its folders)"
    if code == errno.EROFS:
        return f"{shown}: cannot write it: folder {folder} is on a read-only file system"
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = file_in_the_way(name)
        if blocker is not None:
            if blocker == shown:
                return f"{shown}: is a file, not a folder"
            return f"{shown}: {blocker} is a file, not a folder"
    if code == errno.ENOSPC:
        return f"{shown}: no space left on the device of folder {folder}"
    if code == errno.EISDIR:
        return f"{shown}: is a folder, not a file"
    target = f" → {exc.filename2}" if exc.filename2 is not None else ""
    return f"{shown}{target}: {reason.lower() if exc.strerror else reason}"


def make_folder(folder: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
    """`mkdir -p` of the folder an output goes into, refused in one line naming the output."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(os_refusal(exc, output)) from None


# ---------------------------------------------------------------------------------------------
# Locks


# (real lock path, thread) → (fd, depth): re-entrant within one thread of one process; another
# thread opens its own descriptor and so waits on the flock like another process would.
_HELD: dict[tuple[str, int], tuple[int, int]] = {}
_HELD_GUARD = threading.Lock()


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _acquire(path: Path) -> int:
    waited = False
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                holder = ""
                with contextlib.suppress(OSError, ValueError):
                    holder = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
                output = path.parent / path.name[1:-5]  # ".NAME.lock" → NAME
                sys.stderr.write(f"waiting: another zsar run{holder} is writing {output}\n")
                waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        # The holder before us removes the lock file on release: if ours is no longer the file
        # under that name, a third run may lock the new one, so start over on the new file.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the exclusive lock of one output (re-entrant within a process)."""
    if os.fspath(target) == STDIO:
        yield
        return
    path = Path(target)
    make_folder(path.parent, path)
    lock = lock_path(path)
    key = (_real(lock), threading.get_ident())
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            _HELD[key] = (held[0], held[1] + 1)
    if held is None:
        fd = _acquire(lock)
        with _HELD_GUARD:
            _HELD[key] = (fd, 1)
    try:
        yield
    finally:
        with _HELD_GUARD:
            fd, depth = _HELD[key]
            if depth > 1:
                _HELD[key] = (fd, depth - 1)
            else:
                del _HELD[key]
        if depth == 1:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # unlinked while still locked: a waiter re-checks the inode
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# The overwrite policy


@dataclass(frozen=True)
class OutputPlan:
    path: str
    cache_key: str
    up_to_date: bool


def plan_output(
    output: str, kind: str, config: Any, upstream: Sequence[str], force: bool = False
) -> OutputPlan:
    """Decide whether `output` must be (re)made: skip when complete with the same cache key,
    refuse one made with other settings unless `force`, refuse always when it is an input."""
    from zsar_cli.artifacts import compute_cache_key, read_meta

    key = compute_cache_key(kind, config, upstream)
    if output == STDIO:
        return OutputPlan(output, key, False)
    target = check_output_path(output)
    if not target.exists():
        return OutputPlan(output, key, False)
    if target.is_dir():
        raise InputError(f"{output}: is a folder; give a .parquet file name or use --shard")
    if force:
        return OutputPlan(output, key, False)
    try:
        existing = read_meta(output, note=False)
    except Exception as exc:  # an unreadable leftover is not ours to silently replace
        raise CacheMismatchError(
            f"{output}: exists but is not a readable zsar artifact ({exc}); use --force"
        ) from None
    if existing.kind == kind and existing.cache_key == key:
        return OutputPlan(output, key, True)
    raise CacheMismatchError(
        f"{output}: exists with other settings (cache key {existing.cache_key[:12]}, this run "
        f"{key[:12]}); use --force to overwrite or choose another output"
    )


@contextlib.contextmanager
def claim_output(
    output: str, kind: str, config: Any, upstream: Sequence[str], force: bool = False
) -> Iterator[OutputPlan]:
    """Lock `output` and plan it; the lock is held until the block ends (the run's writes)."""
    if output == STDIO:
        yield plan_output(output, kind, config, upstream, force)
        return
    check_output_path(output)
    with output_lock(output):
        yield plan_output(output, kind, config, upstream, force)


def temp_path(target: Path) -> Path:
    """A temp name beside `target` that `clean_stale_temps` recognises (pid of the writer)."""
    return target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def write_text_atomic(
    path: str | os.PathLike[str], text: str | bytes, force: bool = False, option: str = "-o"
) -> None:
    """Write a non-Parquet output (JSON, HTML, PNG) whole, or to stdout for `-`.

    Such files carry no provenance, so "other settings" means other content: an existing file
    with different bytes is refused unless `force`; identical bytes are left as they are.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if os.fspath(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = check_output_path(path, option)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name for {option}")
    with output_lock(target):
        if target.exists():
            if target.read_bytes() == data:
                return
            if not force:
                raise CacheMismatchError(
                    f"{target}: exists with other content; use --force to overwrite or choose "
                    "another output"
                )
        tmp = temp_path(target)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
