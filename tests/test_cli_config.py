"""The configs drive the CLI: option defaults, choices, ranges and help come from the config
dataclasses (zsar_cli.options, zsar_cli.cli.build), cache keys did not move, `--help` stays light.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest
import typer

from zsar_cli.cli.app import app
from zsar_cli.cli.build import Leaf, config_parameters
from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt

CLICK = typer.main.get_command(app)
COMMANDS = {info.name: info.callback for info in app.registered_commands}
# Commands without a stage config, or (synth) whose SynthConfig lives in zsar_cli.synthetic.
PLAIN = {"info", "merge", "synth"}


def params(name: str) -> dict[str, Any]:
    return {p.name: p for p in CLICK.commands[name].params}


def leaves(name: str) -> list[Leaf]:
    return [leaf for cp in config_parameters(COMMANDS[name]).values() for leaf in cp.leaves]


def dummy_args(name: str) -> list[str]:
    """Placeholder values for a command's required parameters (parsed, never opened)."""
    args: list[str] = []
    for p in CLICK.commands[name].params:
        if p.required:
            args += ["x"] if p.param_type_name == "argument" else [p.opts[0], "x"]
    return args


def test_every_stage_command_is_built_from_its_config():
    assert set(COMMANDS) - PLAIN == {n for n in COMMANDS if leaves(n)}


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - PLAIN))
def test_option_defaults_are_the_config_defaults(name):
    options = params(name)
    for leaf in leaves(name):
        field = leaf.field
        default = field.default
        if default is dataclasses.MISSING:
            default = field.default_factory()  # type: ignore[misc]
        param = options[leaf.name]
        if leaf.option.required:
            assert param.required, (name, leaf.name)
        elif leaf.option.parse is not None:
            given = param.default
            assert (leaf.option.parse(given) if given is not None else None) == default
        elif isinstance(default, tuple):
            assert tuple(param.default) == default, (name, leaf.name)
        else:
            assert param.default == default, (name, leaf.name, param.default, default)


def test_synth_defaults_are_synth_config_defaults():
    from zsar_cli.synthetic import SynthConfig

    options = params("synth")
    for field in dataclasses.fields(SynthConfig):
        if field.name in ("width", "height"):
            assert options["size"].default == f"{SynthConfig.width}x{SynthConfig.height}"
        elif isinstance(field.default, tuple):
            lo, hi = field.default
            assert options[field.name].default == f"{lo:g}-{hi:g}", field.name
        elif field.name in options:
            assert options[field.name].default == field.default, field.name


def test_engine_choice_is_the_engines():
    from typing import get_args

    from zsar_cli.cli.common import EngineName
    from zsar_cli.engines import DEFAULT_ENGINE, ENGINES

    assert get_args(EngineName) == ENGINES
    assert params("encode")["engine"].default == DEFAULT_ENGINE


def test_choice_lists_match_the_modules_that_act_on_them():
    from zsar_cli import datasets, metrics, options
    from zsar_cli.backends import hf_loading, openclip
    from zsar_cli.stages import score_config

    assert options.PRECISIONS == openclip.PRECISIONS
    assert ("auto", *hf_loading.DTYPES) == options.LVLM_DTYPES
    assert score_config.GT_FORMATS == datasets.GT_FORMATS
    assert score_config.FILL_MODES == metrics.FILL_MODES


def _choice_params() -> list[tuple[str, Any]]:
    found = []
    for name, command in sorted(CLICK.commands.items()):
        for p in command.params:
            if getattr(p, "type_descriptor", None) is not None and p.type_descriptor.choices:
                found.append((name, p))
    return found


@pytest.mark.parametrize(("name", "param"), _choice_params(), ids=lambda v: getattr(v, "name", v))
def test_bad_choice_is_a_usage_error_listing_the_choices(runner, name, param):
    result = runner.invoke(app, [name, *dummy_args(name), param.opts[0], "bogus"])
    assert result.exit_code == 2, result.output
    assert "'bogus' is not one of" in result.output
    for choice in param.type_descriptor.choices:
        assert repr(choice) in result.output


def test_every_command_with_choices_is_covered():
    assert {name for name, _ in _choice_params()} >= {
        "classify",
        "describe",
        "encode",
        "encode-text",
        "extract-frames",
        "localize",
        "query-lvlm",
        "report",
        "score",
        "select-tokens",
    }


def _outside(leaf: Leaf) -> str:
    o = leaf.option
    step = 0.5 if float in (leaf.hint, *getattr(leaf.hint, "__args__", ())) else 1
    if o.min is not None:
        return str(o.min - step)
    if o.gt is not None:
        return str(o.gt)
    if o.max is not None:
        return str(o.max + step)
    return str(o.lt)


def _ranged() -> list[tuple[str, Leaf]]:
    return [
        (name, leaf)
        for name in sorted(set(COMMANDS) - PLAIN)
        for leaf in leaves(name)
        if leaf.option.has_range() and leaf.option.parse is None
    ]


@pytest.mark.parametrize(("name", "leaf"), _ranged(), ids=lambda v: getattr(v, "name", v))
def test_out_of_range_is_one_line_naming_the_option(runner, name, leaf):
    flag = next(f for f in leaf.option.flags or (f"--{leaf.name.replace('_', '-')}",))
    result = runner.invoke(app, [name, *dummy_args(name), flag, _outside(leaf)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag} must be "), result.output


def test_range_messages():
    @dataclasses.dataclass(frozen=True)
    class Toy(ConfigBase):
        eps: float = opt(0.05, "", min=0, lt=0.5)
        top_p: float = opt(0.35, "", gt=0, max=1)
        n: int | None = opt(None, "", min=1)
        tiou: tuple[float, ...] = opt((0.5,), "", gt=0, max=1)
        mode: str = opt("a", "", choices=("a", "b"))

    assert Toy().validated() == Toy()
    cases = {
        "eps": (0.5, "--eps must be in [0, 0.5) (got 0.5)"),
        "top_p": (0.0, "--top-p must be in (0, 1] (got 0.0)"),
        "n": (0, "--n must be >= 1 (got 0)"),
        "tiou": ((0.5, 1.5), "--tiou must be in (0, 1] (got 1.5)"),
        "mode": ("c", "--mode 'c': choose one of a, b"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(ConfigError) as err:
            dataclasses.replace(Toy(), **{name: value}).validated()
        assert str(err.value) == message


def test_help_text_with_brackets_is_shown_intact(runner):
    result = runner.invoke(app, ["localize", "--help"], terminal_width=200)
    assert "Min-max maps scores into [eps, 1-eps]." in result.output
    result = runner.invoke(app, ["extract-frames", "--help"], terminal_width=200)
    assert "pip install 'zsar[ray]'" in result.output
    result = runner.invoke(app, ["describe", "--help"], terminal_width=200)
    assert "[default: $ZSAR_CACHE_DIR/descriptions or ~/.cache/zsar/descriptions]" in result.output


def test_the_program_imports_only_the_command_it_runs():
    """`zsar extract-frames` builds an app of that one command (issue #17: the other 14 command
    modules, the synthetic world and the OpenAI client cost 0.06-0.09 s of its start-up); no
    command, an option first or an unknown name get the whole app."""
    from zsar_cli.cli.app import command_module

    assert command_module(["extract-frames", "x.mp4"]) == "extract_frames"
    assert command_module(["encode-text", "--labels", "l.txt"]) == "encode"
    assert command_module(["query-lvlm"]) == "query_lvlm"
    assert command_module([]) is None
    assert command_module(["--version"]) is None
    assert command_module(["extract-framez"]) is None
    code = (
        "import sys\n"
        "sys.argv = ['zsar', 'extract-frames', '--help']\n"
        "from zsar_cli.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "names = ('zsar_cli.cli.extract_frames', 'zsar_cli.cli.synth', 'zsar_cli.cli.describe',"
        " 'zsar_cli.synthetic', 'zsar_cli.backends.openai_client')\n"
        "print(' '.join(n for n in names if n in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage:" in done.stdout and "--num-frames" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "zsar_cli.cli.extract_frames"


def test_help_is_light():
    """Importing the app and rendering every command's help loads no numpy, pyarrow or torch."""
    code = (
        "import sys, typer\n"
        "from zsar_cli.cli.app import app\n"
        "group = typer.main.get_command(app)\n"
        "for name, command in group.commands.items():\n"
        "    ctx = command.make_context(name, ['--help'], resilient_parsing=True)\n"
        "    command.get_help(ctx)\n"
        "print(' '.join(m for m in ('torch', 'numpy', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


# Cache keys of each config's defaults, computed on the code before the configs carried option
# metadata (commit d6da81f, `compute_cache_key(kind, config.provenance())` with
# zsar_cli.artifacts.__version__ pinned to "pinned"). Moving the run-only sets into field
# metadata must not move a single key.
CACHE_KEYS = {
    "encode": "a85f0817ab29ec760a758e265565edca",
    "encode-text": "aad35f6c1cb9653781bfd0d4acf4836c",
    "extract-frames": "5e00b100a5a5f142974b31bfccfc9fc3",
    "classify": "b2ae18ac4e81f86dce7d2f1983720e2a",
    # Moved on purpose (issue 14): --video-input (default auto: native clips where the family has
    # a video path) changes classify --lvlm's answers, so its key must change. Moved again on
    # purpose (issue 15): --option-order circular (the new default) asks once per rotation of
    # the options, so runs made in CLIP's order are never reused as circular ones.
    "classify-lvlm": "4d6aa9434b9f19723d818789aa089636",
    "query-lvlm": "09c7a88c68d1852f34b2fc09b3b41123",
    # moved on purpose when select-tokens gained --video-input (auto: native video tokens where
    # the family has a video path; the default model's selection changed)
    "select-tokens": "4834c70672b9d48efdb7c30cba844453",
    # moved on purpose when describe began decoding under a schema (provenance prompt_version 2)
    "describe": "c13f164d6f63880953f14d62049df384",
    "describe-from": "2e8dd35172c40889671e0b3085e83642",
    "localize": "a189e25fd1bc0f39e5d699106218d935",
    "score": "636e426e5e9ca7121699c10e4358682f",
    "report": "39efedfd72d5a35fc880e94e7c555ff1",
}


def test_cache_keys_did_not_move(monkeypatch):
    from zsar_cli import provenance
    from zsar_cli.artifacts import compute_cache_key as key
    from zsar_cli.stages.classify_config import ClassifyConfig
    from zsar_cli.stages.describe import DescribeConfig
    from zsar_cli.stages.encode_config import EncodeConfig, TextEncodeConfig
    from zsar_cli.stages.extract_frames_config import ExtractConfig
    from zsar_cli.stages.localize_config import LocalizeConfig
    from zsar_cli.stages.query_lvlm_config import QueryConfig
    from zsar_cli.stages.report_config import ReportConfig
    from zsar_cli.stages.score_config import ScoreConfig
    from zsar_cli.stages.select_tokens_config import LVLMChoiceConfig, SelectTokensConfig

    monkeypatch.setattr(provenance, "__version__", "pinned")
    clip = ClassifyConfig().provenance()
    keys = {
        "encode": key("embeddings", EncodeConfig().validated().provenance()),
        "encode-text": key("text_embeddings", TextEncodeConfig().provenance()),
        "extract-frames": key("frames", ExtractConfig().validated().provenance()),
        "classify": key("predictions", ClassifyConfig().validated().provenance()),
        "classify-lvlm": key(
            "predictions", {"clip": clip, "lvlm": LVLMChoiceConfig().validated().provenance()}
        ),
        "query-lvlm": key("answers", QueryConfig(question="Is it?").validated().provenance()),
        "select-tokens": key(
            "tokens", SelectTokensConfig(question="Is it?").validated().provenance()
        ),
        "describe": key("descriptions", DescribeConfig().validated().provenance()),
        "describe-from": key(
            "descriptions", DescribeConfig(from_file="d.json").validated().provenance()
        ),
        # localize writes its config's provenance (options left unset, e.g. --adapter, omitted)
        "localize": key("intervals", LocalizeConfig().provenance()),
        # score writes its config's provenance (options left unset, e.g. --class-splits, omitted)
        "score": key("metrics", ScoreConfig().provenance()),
        "report": key("metrics", ReportConfig().provenance()),
    }
    assert keys == CACHE_KEYS


def test_provenance_leaves_out_run_only_fields():
    from zsar_cli.stages.classify_config import ClassifyConfig
    from zsar_cli.stages.describe import DescribeConfig

    assert set(dataclasses.asdict(ClassifyConfig())) - set(ClassifyConfig().provenance()) == {
        "device",
        "batch_size",
        "workers",
        "strict",
        "top_k",
        "root",
        # omit_unset: out of the key while None (--adapter came later and moved no key)
        "adapter",
        "adapter_weight",
    }
    with_adapter = ClassifyConfig(adapter="a.parquet", adapter_weight=0.0).provenance()
    assert with_adapter["adapter"] == "a.parquet" and with_adapter["adapter_weight"] == 0.0
    assert set(dataclasses.asdict(DescribeConfig())) - set(DescribeConfig().provenance()) == {
        "device",
        "batch_size",
        "cache_dir",
        # served models only (request_* are run-only for them too): local keys do not move
        "response_format",
        "request_concurrency",
        "request_timeout",
        "request_retries",
    }
    served = DescribeConfig(model="openai:http://h:8000/v1#m").provenance()
    assert served["response_format"] == "json_schema" and "request_timeout" not in served


def test_nested_and_repeatable_options_build_the_config(runner, monkeypatch):
    """classify's PromptConfig options land in config.prompts; localize's repeatable --normal is a
    tuple; select-tokens' --layers is parsed."""
    from zsar_cli.stages import localize, select_tokens

    seen: dict[str, Any] = {}

    def fake_run(config, **_kwargs):
        seen["localize"] = config
        raise ConfigError("stop")

    def fake_select(_frames, _output, config, **_kwargs):
        seen["select"] = config
        raise ConfigError("stop")

    monkeypatch.setattr(localize, "run", fake_run)
    monkeypatch.setattr(select_tokens, "run", fake_select)
    runner.invoke(app, ["localize", "--normal", "Calm", "--normal", "Still", "--gt-labels", "g"])
    assert seen["localize"].normal_labels == ("Calm", "Still")
    assert seen["localize"].use_gt_labels is True
    runner.invoke(app, ["select-tokens", "f", "-o", "t", "--question", "q?", "--layers", "0,-1"])
    assert seen["select"].layers == (0, -1)
    from zsar_cli.cli.build import config_parameters as cps

    (cp,) = [c for n, c in cps(COMMANDS["classify"]).items() if n == "config"]
    values = {leaf.name: params("classify")[leaf.name].default for leaf in cp.leaves}
    values["templates"] = "none"
    values["seed"] = 3
    built = cp.build(values)
    assert built.prompts.templates == "none" and built.prompts.seed == 3 and not values


def test_every_command_is_found_by_the_program():
    """Each command of the whole app is either built alone from the module `main` picks for it
    (so `zsar NAME` works with one module imported) or left to the whole app."""
    from typer.main import get_command

    from zsar_cli.cli.app import app, build_app, command_module

    names = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert "extract-frames" in names and "encode-text" in names
    for name in names:
        module = command_module([name])
        if module is not None:
            alone = get_command(build_app((module,))).commands  # type: ignore[attr-defined]
            assert name in alone, (name, module)
