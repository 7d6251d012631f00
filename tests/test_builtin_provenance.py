"""Built-in models in provenance (issue 16.6): `builtin:NAME` and the hash of its files.

An artifact made with `builtin:world-clip` or `builtin:world-lvlm` used to record the absolute
path of the installed package (`openclip:zsar-world-rn@/site-packages/zsar_cli/models/...`), so
the same artifact read by another checkout was "made with another model", and
`classify EMB -m builtin:world-clip` was refused for EMB made by that very model. Now the record
is `model_spec: builtin:NAME` with `model_sha256` of the model's files; readers (classify,
select-tokens --scorer clip, query-lvlm --tokens) resolve it again and refuse, in one line, only
a built-in model whose files changed since.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import zsar_cli.backends
import zsar_cli.backends.openclip
from zsar_cli.artifacts import read_artifact
from zsar_cli.backends import MODELS_DIR
from zsar_cli.cli.app import app
from zsar_cli.errors import ModelError


def builtin_digest(name: str) -> str:
    return zsar_cli.backends.builtin_digest(name)


CLIP = "builtin:world-clip"
LVLM = "builtin:world-lvlm"
QUESTION = "Is there {label}?"


def ok(runner, *args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def metadata(path: Path) -> dict[str, str]:
    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items()}


def with_metadata(source: Path, target: Path, **changes: str) -> Path:
    table = pq.read_table(source)
    meta = {**(table.schema.metadata or {})}
    meta.update({f"zsar.{k}".encode(): v.encode() for k, v in changes.items()})
    pq.write_table(table.replace_schema_metadata(meta), target)
    return target


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from typer.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("builtin")
    w = root / "w"
    ok(runner, "synth", w, "--trimmed", "2", "--untrimmed", "0", "--anomaly", "0")
    ok(
        runner,
        "extract-frames",
        w / "trimmed" / "list.csv",
        "-o",
        root / "frames.parquet",
        "-n",
        "2",
    )
    ok(runner, "encode", root / "frames.parquet", "-o", root / "emb.parquet", "-m", CLIP)
    return {"root": root, "labels": w / "labels.txt", "videos": w / "trimmed" / "list.csv"}


def test_specs_of_builtin_files_are_builtin():
    from zsar_cli.backends import canonical_spec, model_record

    weights = MODELS_DIR / "world-clip" / "world-clip.safetensors"
    assert canonical_spec(CLIP) == CLIP
    assert canonical_spec(f"openclip:zsar-world-rn@{weights}") == CLIP
    assert canonical_spec(f"openclip:local-dir:{MODELS_DIR / 'world-clip'}") == CLIP
    assert canonical_spec(f"hf:{MODELS_DIR / 'world-lvlm'}") == LVLM
    assert canonical_spec("hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct").startswith("hf:Hug")
    assert canonical_spec("openclip:ViT-B-32@/elsewhere/w.safetensors").endswith("w.safetensors")
    record = model_record(f"openclip:zsar-world-rn@{weights}")
    digest = builtin_digest("world-clip")
    assert record == {"model_spec": CLIP, "model_sha256": digest, "model_revision": digest}
    assert record["model_sha256"].startswith("sha256:") and len(record["model_sha256"]) == 71
    assert model_record("fake:clip") == {"model_spec": "fake:clip", "model_revision": ""}


def test_no_artifact_records_the_install_path(world, runner, tmp_path):
    """Every stage run with a built-in model records builtin:NAME and the files' hash."""
    root, labels = world["root"], world["labels"]
    ok(runner, "encode-text", "-l", labels, "-o", tmp_path / "text.parquet", "-m", CLIP)
    ok(runner, "classify", root / "emb.parquet", "-l", labels, "-o", tmp_path / "pred.parquet")
    ok(runner, "classify", root / "emb.parquet", "-l", labels, "-m", CLIP, "-o", tmp_path / "p2")
    dense = tmp_path / "dense.parquet"
    ok(runner, "extract-frames", world["videos"], "--segments", "2", "--frames-per-segment", "1",
       "-o", dense)  # fmt: skip
    tokens = tmp_path / "tokens.parquet"
    select = ["--question", QUESTION, "-l", labels, "--budget", "4", "--baseline-frames", "2"]
    ok(runner, "select-tokens", dense, "-o", tokens, "-m", LVLM, *select)
    ok(runner, "query-lvlm", dense, "--tokens", tokens, "-l", labels, "--question", QUESTION,
       "-o", tmp_path / "answers.parquet")  # fmt: skip
    ok(runner, "query-lvlm", dense, "-m", LVLM, "--question", "Is it?", "-o", tmp_path / "a2")
    install = str(MODELS_DIR.parent)
    made = [root / "emb.parquet", *sorted(p for p in tmp_path.iterdir() if p.suffix != ".json")]
    made = [p for p in made if p.is_file() and p.name != "dense.parquet"]
    assert len(made) == 7
    for path in made:
        meta = metadata(path)
        leaked = {k: v[:80] for k, v in meta.items() if install in v}
        assert not leaked, (path.name, leaked)
        spec = meta["zsar.model_spec"]
        assert spec in (CLIP, LVLM), (path.name, spec)
        assert meta["zsar.model_sha256"] == builtin_digest(spec.partition(":")[2]), path.name
    emb = metadata(root / "emb.parquet")
    assert emb["zsar.pretrained"] == builtin_digest("world-clip")
    assert json.loads(metadata(tmp_path / "pred.parquet")["zsar.config"])["model"] == CLIP


@pytest.fixture
def moved_install(tmp_path, monkeypatch):
    """The built-in models as another checkout (or site-packages) has them."""
    models = tmp_path / "elsewhere" / "models"
    shutil.copytree(MODELS_DIR, models)
    monkeypatch.setattr(zsar_cli.backends, "MODELS_DIR", models)
    monkeypatch.setattr(zsar_cli.backends.openclip, "MODELS_DIR", models)
    monkeypatch.setattr(zsar_cli.backends.openclip, "_LOADED", {})
    return models


def test_classify_with_the_model_that_made_the_embeddings(world, runner, tmp_path, moved_install):
    """Issue 16.6: refused because the two spellings (or two install paths) differed."""
    root, labels = world["root"], world["labels"]
    weights = moved_install / "world-clip" / "world-clip.safetensors"
    for model in (
        CLIP,
        f"openclip:zsar-world-rn@{weights}",
    ):
        out = tmp_path / f"pred{len(model)}.parquet"
        ok(runner, "classify", root / "emb.parquet", "-l", labels, "-m", model, "-o", out)
        assert read_artifact(out).meta.extra_json("model_spec") == CLIP
    # An artifact of an older zsar that recorded this install's path reads as the built-in too.
    old = with_metadata(
        root / "emb.parquet",
        tmp_path / "old.parquet",
        model_spec=f"openclip:zsar-world-rn@{weights}",
    )
    ok(runner, "classify", old, "-l", labels, "-m", CLIP, "-o", tmp_path / "p_old.parquet")


def test_a_rebuilt_builtin_is_refused_in_one_line(world, runner, tmp_path, moved_install):
    (moved_install / "world-clip" / "NOTES.md").write_text("rebuilt with other settings\n")
    root, labels = world["root"], world["labels"]
    out = tmp_path / "pred.parquet"
    result = runner.invoke(
        app, ["classify", str(root / "emb.parquet"), "-l", str(labels), "-o", str(out)]
    )
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "emb.parquet" in line and "rebuilt since" in line
    assert not out.exists()
    with pytest.raises(ModelError, match="rebuilt since"):
        recorded = metadata(root / "emb.parquet")["zsar.model_sha256"]
        zsar_cli.backends.check_recorded_model(CLIP, recorded, "x")
    # A hidden file is no part of the model.
    (moved_install / "world-clip" / "NOTES.md").unlink()
    (moved_install / "world-clip" / ".DS_Store").write_bytes(b"\0")
    ok(runner, "classify", root / "emb.parquet", "-l", labels, "-o", out)


def test_tokens_selected_with_a_builtin_are_answered_by_it(world, runner, tmp_path):
    """query-lvlm --tokens resolves the recorded builtin:world-lvlm (and -m spelled so agrees)."""
    labels = world["labels"]
    dense = tmp_path / "dense.parquet"
    ok(runner, "extract-frames", world["videos"], "--segments", "2", "--frames-per-segment", "1",
       "-o", dense)  # fmt: skip
    tokens = tmp_path / "tokens.parquet"
    select = ["--question", QUESTION, "-l", labels, "--budget", "4", "--baseline-frames", "2"]
    ok(runner, "select-tokens", dense, "-o", tokens, "-m", LVLM, *select)
    answer = ["--tokens", tokens, "-l", labels, "--question", QUESTION]
    ok(runner, "query-lvlm", dense, *answer, "-m", LVLM, "-o", tmp_path / "a.parquet")
    ok(runner, "query-lvlm", dense, *answer, "-m", f"hf:{MODELS_DIR / 'world-lvlm'}",
       "-o", tmp_path / "b.parquet")  # fmt: skip
    stale = with_metadata(tokens, tmp_path / "stale.parquet", model_sha256="sha256:" + "0" * 64)
    out = tmp_path / "c.parquet"
    result = runner.invoke(
        app,
        ["query-lvlm", str(dense), "--tokens", str(stale), "-l", str(labels), "--question",
         QUESTION, "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 1 and "stale.parquet" in result.stderr, result.output
    assert "rebuilt since" in result.stderr and not out.exists()
