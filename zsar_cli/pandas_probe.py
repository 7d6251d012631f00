"""The `zsar` program skips pyarrow's pandas probe (issue #17: start-up of every command).

At the first `pa.array` or `pa.table` of a process, pyarrow asks whether pandas is installed by
importing it: 0.13-0.18 s where it is (most research environments), more than decoding 8 frames of
a 30-s clip. zsar never uses pandas. So the program (`zsar_cli.cli.app.main`; not zsar imported as
a library) installs an import finder that refuses `import pandas` when the import comes from
zsar's own code through pyarrow (the nearest Python frame under the import machinery is zsar's or
pyarrow's: pyarrow's probe runs in compiled code, which has no frame of its own). Every other
importer (Ray's data layer, a user's plugin) gets pandas as usual, and pyarrow itself imports it
again when asked for pandas later (`Table.to_pandas` retries a failed probe), so nothing that needs
pandas loses it.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from types import FrameType

# Modules whose imports are the import machinery itself, skipped to find who imports.
_MACHINERY = ("importlib", "_frozen_importlib")
# Importers on whose behalf the probe is refused: zsar, and pyarrow's own Python modules called
# by zsar (pandas_compat is what pyarrow imports once pandas is really wanted).
_PROBERS = ("zsar_cli", "pyarrow")
_WANTS_PANDAS = ("pyarrow.pandas_compat",)


class _SkipPandasProbe:
    """A `sys.meta_path` finder: ImportError for a probing `import pandas`, else no opinion."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name != "pandas":
            return None
        importer = _importer(sys._getframe(1))
        if importer.startswith(_PROBERS) and not importer.startswith(_WANTS_PANDAS):
            raise ImportError("pandas is not needed by zsar (pyarrow's probe skipped)")
        return None


def _importer(frame: FrameType | None) -> str:
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_MACHINERY):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def skip_pandas_probe() -> None:
    """Install the finder once, first in `sys.meta_path` (pandas not imported yet, else moot)."""
    if "pandas" in sys.modules or any(isinstance(f, _SkipPandasProbe) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _SkipPandasProbe())  # type: ignore[arg-type]
