"""The package's shape: modules stay small enough to read (issue 13: none past 500 lines; the
guide is ~400), and the package root imports nothing heavy."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zsar_cli"
LIMIT = 500


def test_no_module_over_the_limit():
    sizes = {
        str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert sizes, "no modules found"
    too_long = {name: n for name, n in sizes.items() if n > LIMIT}
    assert too_long == {}, f"split these along their seams: {too_long}"
