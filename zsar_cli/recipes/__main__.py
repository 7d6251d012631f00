"""`python -m zsar_cli.recipes NAME --root DIR --out DIR`: run one recipe (see the package)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zsar_cli.errors import ZsarError
from zsar_cli.recipes import DEFAULT_CLIP, DEFAULT_LVLM, RECIPES, Settings, run_recipe


def main(argv: list[str] | None = None) -> int:
    from zsar_cli.recipes import classification, temporal, ucfcrime  # noqa: F401  (registers)

    parser = argparse.ArgumentParser(prog="python -m zsar_cli.recipes", description=__doc__)
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--root", required=True, type=Path, help="the dataset's folder")
    parser.add_argument("--out", required=True, type=Path, help="where artifacts and table go")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help="CLIP model spec")
    parser.add_argument("--lvlm", default=DEFAULT_LVLM, help="LVLM spec")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--descriptions", help="descriptions (JSON/Parquet) instead of describe")
    parser.add_argument("--describe-model", help="text model for zsar describe")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe's own setting"
    )
    args = parser.parse_args(argv)
    extra = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        extra[key] = value
    settings = Settings(
        args.root,
        args.out,
        args.clip,
        args.lvlm,
        args.device,
        args.describe_model,
        args.descriptions,
        extra,
    )
    try:
        table = run_recipe(args.name, settings)
    except ZsarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(table.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
