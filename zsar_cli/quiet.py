"""What the libraries zsar calls may print: nothing, unless a person watches or asks.

Input: the environment (`ZSAR_VERBOSE`, `ZSAR_NO_PROGRESS`) and whether stderr is a terminal.
Output: none; `quiet_libraries()` switches off, for the duration of a block, the progress bars
of transformers and huggingface_hub ("Loading weights: 100%|████|" on every LVLM load) and the
warnings of torch, transformers, open_clip and timm.

Why: zsar's stderr is its own one-line status and errors (issue 16). A log file of a batch job
filled with carriage-return bars, or a UserWarning of torch's unpickler printed above zsar's own
refusal of the same file, is noise that hides the line that matters.

- Library progress bars are shown when stderr is a terminal (and ZSAR_NO_PROGRESS is unset), as
  zsar's own progress is, or with ZSAR_VERBOSE=1.
- Library warnings and log records below ERROR are shown only with ZSAR_VERBOSE=1.

Standard library only; transformers and huggingface_hub are switched only when already imported
(whoever loads a model imports them first), so the CLI's startup stays light.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

# Loggers of the libraries behind the backends (transformers has its own verbosity API).
LIBRARY_LOGGERS: tuple[str, ...] = ("huggingface_hub", "timm", "open_clip", "torch", "PIL")


def verbose() -> bool:
    """ZSAR_VERBOSE=1: let every library print what it prints (for debugging a load)."""
    return os.environ.get("ZSAR_VERBOSE", "") not in ("", "0", "false", "no")


def bars_wanted() -> bool:
    """Library progress bars: with ZSAR_VERBOSE, or when a person watches stderr."""
    if verbose():
        return True
    return sys.stderr.isatty() and not os.environ.get("ZSAR_NO_PROGRESS")


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library bars and warnings off inside the block (see the module docstring); re-entrant,
    and everything is put back as it was afterwards."""
    if verbose():
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        for name in LIBRARY_LOGGERS:
            stack.enter_context(_logger_level(logging.getLogger(name), logging.ERROR))
        stack.enter_context(_transformers_quiet(bars=bars_wanted()))
        if not bars_wanted():
            stack.enter_context(_hub_bars_off())
        yield


@contextlib.contextmanager
def _logger_level(logger: logging.Logger, level: int) -> Iterator[None]:
    previous = logger.level
    if previous < level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def _transformers_quiet(bars: bool) -> Iterator[None]:
    if "transformers" not in sys.modules:
        yield
        return
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on and not bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _hub_bars_off() -> Iterator[None]:
    if "huggingface_hub" not in sys.modules:
        yield
        return
    from huggingface_hub import utils as hub_utils

    were_off = hub_utils.are_progress_bars_disabled()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if not were_off:
            hub_utils.enable_progress_bars()
