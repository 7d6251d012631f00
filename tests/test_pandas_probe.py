"""The `zsar` program skips pyarrow's pandas probe (zsar_cli.pandas_probe), and nothing that
wants pandas loses it. Each check runs in a fresh interpreter: pandas must not be imported yet."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_clip

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pandas") is None, reason="pandas not installed: nothing to skip"
)
ROOT = Path(__file__).resolve().parents[1]


def fresh(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_command_runs_without_importing_pandas_and_pandas_still_works(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", duration=1.0)
    out = tmp_path / "f.parquet"
    code = f"""
import json, sys
sys.argv = ["zsar", "extract-frames", {str(clip)!r}, "-n", "3", "-o", {str(out)!r}]
from zsar_cli.cli.app import main
try:
    main()
except SystemExit:
    pass
during = "pandas" in sys.modules
import pyarrow as pa
frame = pa.table({{"a": [1, 2]}}).to_pandas()  # pyarrow retries its probe when asked
again = pa.array(frame["a"]).to_pylist()  # and knows pandas objects again
print(json.dumps({{"during": during, "after": type(frame).__name__, "again": again}}))
"""
    got = fresh(code)
    assert got == {"during": False, "after": "DataFrame", "again": [1, 2]}
    assert out.exists()


@pytest.mark.parametrize("other", ["ray.data.block", "pyarrow.pandas_compat", "__main__"])
def test_only_the_probe_on_zsars_behalf_is_refused(other):
    # pyarrow.pandas_compat: pyarrow importing pandas because it is wanted (to_pandas).
    code = f"""
import json
from zsar_cli.pandas_probe import skip_pandas_probe
skip_pandas_probe()

def import_from(module_name):
    try:
        exec("import pandas", {{"__name__": module_name}})
        return "imported"
    except ImportError:
        return "refused"

print(json.dumps([import_from("zsar_cli.provenance"), import_from({other!r})]))
"""
    assert fresh(code) == ["refused", "imported"]
