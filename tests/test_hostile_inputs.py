"""Careless or hostile input (issue 16): every bad input is one line naming the file or option.

Each case runs the real command in-process (typer's CliRunner) and checks the contract of the
error boundary: the exit code (1 for a bad input, 2 only for usage), one line on stderr that
names the file or the option at fault, no traceback, no control byte, and no output or temp
file left behind. Inputs are a small chain made with the `fake:` backend (tests/fakes.py) and
the built-in world models, then damaged: a corrupt data page, a corrupt footer, a text file
posing as Parquet, descriptions without a label, an infinite --fps, an empty -o, a pickle
checkpoint, and outputs where the file system says no (a file where a folder should be; a
read-only folder and an unreadable input in a subprocess that cannot override permissions).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zsar_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
CLIP = "fake:clip"
LVLM = "fake:lvlm"
QUESTION = "Is there {label}?"


def run(runner, *args: object):
    return runner.invoke(app, [str(a) for a in args])


def ok(runner, *args: object):
    result = run(runner, *args)
    assert result.exit_code == 0, result.output
    return result


def leftovers(folder: Path) -> list[str]:
    """Hidden temp, lock, checkpoint or staging files of zsar's writers in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def assert_one_line(result, *names: str, code: int = 1) -> str:
    """Exit `code`, one printable `error:` line on stderr naming every one of `names`."""
    assert result.exit_code == code, result.output
    text = result.stderr.strip()
    assert "Traceback" not in result.output and "internal error" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert lines[0].isprintable(), repr(lines[0])
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A world of 3 trimmed + 1 untrimmed clips and every artifact kind a command reads."""
    from typer.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("hostile")
    w = root / "w"
    short = ("--trimmed-duration", "2-3", "--untrimmed-duration", "8-10")
    ok(runner, "synth", w, "--trimmed", "3", "--untrimmed", "1", "--anomaly", "0", *short)
    labels, desc = w / "labels.txt", w / "descriptions.json"
    videos = w / "trimmed" / "list.csv"
    frames = root / "frames.parquet"
    ok(runner, "extract-frames", videos, "-o", frames, "-n", "2", "--size", "32")
    untrimmed = root / "uframes.parquet"
    ok(runner, "extract-frames", w / "untrimmed" / "list.csv", "-o", untrimmed, "--fps", "1")
    assert untrimmed.exists()
    ok(runner, "encode", frames, "-o", root / "emb.parquet", "-m", CLIP)
    ok(runner, "encode", untrimmed, "-o", root / "uemb.parquet", "-m", CLIP)
    ok(runner, "encode-text", "-l", labels, "-o", root / "text.parquet", "-m", CLIP)
    ok(
        runner,
        "query-lvlm",
        untrimmed,
        "-o",
        root / "answers.parquet",
        "-m",
        LVLM,
        "-l",
        labels,
        "--descriptions",
        desc,
    )
    ok(runner, "classify", root / "emb.parquet", "-l", labels, "-o", root / "pred.parquet")
    ok(
        runner,
        "localize",
        "--embeddings",
        root / "uemb.parquet",
        "--text",
        root / "text.parquet",
        "--answers",
        root / "answers.parquet",
        "-o",
        root / "intervals.parquet",
    )
    return {
        "root": root,
        "w": w,
        "labels": labels,
        "desc": desc,
        "videos": videos,
        "frames": frames,
        "emb": root / "emb.parquet",
        "text": root / "text.parquet",
        "pred": root / "pred.parquet",
        "intervals": root / "intervals.parquet",
        "gt": w / "untrimmed" / "activitynet.json",
    }


def corrupt_page(source: Path, target: Path) -> Path:
    """Flip bytes inside the first column chunk's data (the footer stays intact)."""
    import pyarrow.parquet as pq

    column = pq.ParquetFile(source).metadata.row_group(0).column(0)
    start = column.data_page_offset + 16
    data = bytearray(source.read_bytes())
    for i in range(start, min(start + 64, column.data_page_offset + column.total_compressed_size)):
        data[i] ^= 0x5A
    target.write_bytes(bytes(data))
    return target


def corrupt_footer(source: Path, target: Path) -> Path:
    """Damage the thrift footer: pyarrow's message then holds raw control bytes."""
    data = bytearray(source.read_bytes())
    for i in range(len(data) - 300, len(data) - 8):
        data[i] ^= 0x13
    target.write_bytes(bytes(data))
    return target


# ---------------------------------------------------------------------------------------------
# Damaged artifacts, for every command that reads one


def _commands(c: dict, bad: Path, out: Path) -> dict[str, list[object]]:
    """Each artifact-reading command with `bad` as its artifact input and `out` as its output."""
    labels = c["labels"]
    return {
        "info": ["info", bad],
        "encode": ["encode", bad, "-o", out, "-m", CLIP],
        "classify": ["classify", bad, "-l", labels, "-o", out, "-m", CLIP],
        "query-lvlm": ["query-lvlm", bad, "-o", out, "-m", LVLM, "--question", "Is it?"],
        "select-tokens": ["select-tokens", bad, "-o", out, "-l", labels, "--question", QUESTION],
        "localize": [
            "localize",
            "--embeddings",
            bad,
            "--text",
            c["text"],
            "--method",
            "clip",
            "-o",
            out,
        ],
        "score": ["score", bad, "--json", "-o", out],
        "report": ["report", bad, "-o", out],
        "merge": ["merge", bad, "-o", out],
        "describe": ["describe", "--from", bad, "-l", labels, "-o", out],
        "encode-text": ["encode-text", "-l", labels, "--descriptions", bad, "-o", out, "-m", CLIP],
    }


COMMANDS = (
    "info",
    "encode",
    "classify",
    "query-lvlm",
    "select-tokens",
    "localize",
    "score",
    "report",
    "merge",
    "describe",
    "encode-text",
)


@pytest.mark.parametrize("damage", ["page", "footer", "text", "empty"])
@pytest.mark.parametrize("command", COMMANDS)
def test_damaged_artifact_is_one_line_naming_it(chain, runner, tmp_path, command, damage):
    # The artifact each command expects, damaged: frames for the frame readers, etc.
    source = {
        "encode": chain["frames"],
        "query-lvlm": chain["frames"],
        "select-tokens": chain["frames"],
        "classify": chain["emb"],
        "localize": chain["emb"],
        "score": chain["pred"],
        "report": chain["pred"],
    }.get(command, chain["emb"])
    if command in ("describe", "encode-text"):  # descriptions may be a Parquet artifact
        ok(runner, "describe", "--from", chain["desc"], "-o", tmp_path / "d.parquet")
        source = tmp_path / "d.parquet"
    bad = tmp_path / "bad.parquet"
    if damage == "page":
        corrupt_page(source, bad)
    elif damage == "footer":
        corrupt_footer(source, bad)
    elif damage == "text":
        bad.write_text("video_id,label\nv1,a red circle\n")
    else:
        bad.write_bytes(b"")
    if command == "merge":  # merge reads a folder of parts
        folder = tmp_path / "parts"
        folder.mkdir()
        shutil.copy(chain["emb"], folder / "part-00000-of-00002.parquet")
        bad = bad.rename(folder / "part-00001-of-00002.parquet")
    out = tmp_path / "out" / ("report" if command == "report" else "out.parquet")
    result = run(runner, *_commands(chain, bad, out)[command])
    assert_one_line(result, bad.name)
    assert not out.exists()
    if out.parent.exists():
        assert leftovers(out.parent) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_corrupt_data_page_names_the_file_not_zstd(chain, runner, tmp_path):
    """Issue 16.5: was `OSError: ZSTD decompression failed` (the file unnamed)."""
    bad = corrupt_page(chain["emb"], tmp_path / "emb.parquet")
    line = assert_one_line(run(runner, "info", bad), str(bad))
    assert "corrupt" in line


def test_corrupt_footer_is_one_printable_line(chain, runner, tmp_path):
    """Issue 16.5: pyarrow's thrift message held a newline and a raw control byte."""
    bad = corrupt_footer(chain["emb"], tmp_path / "emb.parquet")
    line = assert_one_line(run(runner, "classify", bad, "-l", chain["labels"]), str(bad))
    assert "\x1b" not in line and "\r" not in line


# ---------------------------------------------------------------------------------------------
# Options and inputs that name nothing


def _without_first_label(chain, tmp_path: Path) -> Path:
    records = json.loads(chain["desc"].read_text())
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(records[1:]))
    return partial


@pytest.mark.parametrize("command", ["encode-text", "classify", "query-lvlm", "describe"])
def test_descriptions_missing_a_label_name_the_file_and_option(chain, runner, tmp_path, command):
    """Issue 16.5: encode-text and classify said "descriptions lack label(s) ..." only."""
    partial = _without_first_label(chain, tmp_path)
    first = json.loads(chain["desc"].read_text())[0]["label"]
    labels, out = chain["labels"], tmp_path / "out.parquet"
    argv = {
        "encode-text": ["encode-text", "-l", labels, "--descriptions", partial, "-m", CLIP],
        "classify": ["classify", chain["emb"], "-l", labels, "--descriptions", partial],
        "query-lvlm": ["query-lvlm", chain["frames"], "-m", LVLM, "-l", labels, "--descriptions"],
        "describe": ["describe", "-l", labels, "--from", partial],
    }[command]
    if command == "query-lvlm":
        argv.append(partial)
    option = "--from" if command == "describe" else "--descriptions"
    line = assert_one_line(run(runner, *argv, "-o", out), f"{option} {partial}", repr(first))
    assert "no description for label" in line
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "1e400"])
def test_fps_must_be_finite_and_bounded(chain, runner, tmp_path, value):
    """Issue 16.5: `--fps inf` (and 1e308) overflowed: internal error, exit 70."""
    out = tmp_path / "f.parquet"
    result = run(runner, "extract-frames", chain["videos"], "--fps", value, "-o", out)
    assert_one_line(result, "--fps")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["localize", "--method", "clip", "--max-len", "inf"],
        ["localize", "--method", "clip", "--sigma", "nan"],
        ["score", "PRED", "--tiou", "0.5,inf"],
    ],
)
def test_non_finite_floats_are_refused_for_every_option(chain, runner, tmp_path, argv):
    argv = [str(chain["pred"]) if a == "PRED" else a for a in argv]
    if argv[0] == "localize":
        argv += ["--embeddings", str(chain["emb"]), "--text", str(chain["text"])]
    flag = next(a for a in argv if a in ("--max-len", "--sigma", "--tiou"))
    result = run(runner, *argv, "-o", tmp_path / "x.parquet")
    assert result.exit_code in (1, 2), result.output
    assert flag in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    [
        *("extract-frames", "encode", "encode-text", "classify", "query-lvlm", "select-tokens"),
        *("localize", "score", "report", "describe", "merge"),
    ],
)
def test_empty_output_path_is_refused(chain, runner, tmp_path, monkeypatch, command):
    """`-o ''`: report wrote report.html and its figures into the current folder."""
    c = chain
    monkeypatch.chdir(tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copy(c["emb"], parts / "part-00000-of-00001.parquet")
    argv = {
        "extract-frames": ["extract-frames", c["videos"], "-n", "1"],
        "encode": ["encode", c["frames"], "-m", CLIP],
        "encode-text": ["encode-text", "-l", c["labels"], "-m", CLIP],
        "classify": ["classify", c["emb"], "-l", c["labels"]],
        "query-lvlm": ["query-lvlm", c["frames"], "-m", LVLM, "--question", "Is it?"],
        "select-tokens": ["select-tokens", c["frames"], "-l", c["labels"], "--question", QUESTION],
        "localize": ["localize", "--method", "clip", "--embeddings", c["emb"], "--text", c["text"]],
        "score": ["score", c["pred"], "--json"],
        "report": ["report", c["pred"]],
        "describe": ["describe", "--from", c["desc"]],
        "merge": ["merge", parts],
    }[command]
    before = sorted(os.listdir(c["root"]))
    assert_one_line(run(runner, *argv, "-o", ""), "-o ''")
    assert sorted(os.listdir(c["root"])) == before
    assert sorted(os.listdir(tmp_path)) == ["parts"]
    assert os.listdir(parts) == ["part-00000-of-00001.parquet"]


# ---------------------------------------------------------------------------------------------
# Models


def test_pickle_checkpoint_in_a_local_dir_is_one_line(chain, runner, tmp_path):
    """Issue 16.5: three lines (torch's UserWarning about the pickle protocol, then its whole
    weights_only explanation); now one line saying what to do, and no warning."""
    import pickle

    folder = tmp_path / "clip"
    folder.mkdir()
    model = ROOT / "zsar_cli" / "models" / "world-clip"
    shutil.copy(model / "open_clip_config.json", folder)
    with (folder / "open_clip_pytorch_model.bin").open("wb") as handle:
        pickle.dump({"state_dict": complex(1, 2)}, handle, protocol=4)
    out = tmp_path / "emb.parquet"
    result = run(runner, "encode", chain["frames"], "-m", f"openclip:local-dir:{folder}", "-o", out)
    line = assert_one_line(result, f"local-dir:{folder}")
    assert "pickled objects" in line and ".safetensors" in line and len(line) < 300
    assert not out.exists()


def test_checkpoint_with_the_wrong_keys_is_a_short_line(chain, runner, tmp_path):
    """open_clip lists every missing key (pages); the line keeps the first words."""
    import torch

    folder = tmp_path / "clip"
    folder.mkdir()
    shutil.copy(ROOT / "zsar_cli" / "models" / "world-clip" / "open_clip_config.json", folder)
    torch.save({"unrelated": torch.zeros(2)}, folder / "open_clip_pytorch_model.bin")
    result = run(runner, "encode", chain["frames"], "-m", f"openclip:local-dir:{folder}", "-o", "x")
    line = assert_one_line(result, f"local-dir:{folder}")
    assert len(line) < 400


# ---------------------------------------------------------------------------------------------
# What the file system refuses


@pytest.mark.parametrize("command", ["encode", "score", "report", "shard", "extract-frames"])
def test_a_file_where_the_output_folder_should_be(chain, runner, tmp_path, command):
    """mkdir said "labels.txt: file exists" (through the generic OSError fallback)."""
    blocker = tmp_path / "labels.txt"
    blocker.write_text("a\n")
    out = blocker / "sub" / ("report" if command == "report" else "out.parquet")
    argv = {
        "encode": ["encode", chain["frames"], "-m", CLIP, "-o", out],
        "score": ["score", chain["pred"], "--json", "-o", out],
        "report": ["report", chain["pred"], "-o", out],
        "shard": ["encode", chain["frames"], "-m", CLIP, "--shard", "0/2", "-o", out.parent],
        "extract-frames": ["extract-frames", chain["videos"], "-n", "1", "-o", out],
    }[command]
    line = assert_one_line(run(runner, *argv), str(blocker))
    assert "is a file, not a folder" in line
    assert sorted(os.listdir(tmp_path)) == ["labels.txt"]


def _unprivileged() -> list[str] | None:
    """A command prefix under which chmod is obeyed: nothing for a normal user; for root,
    setpriv without the capabilities that override file permissions (None if unavailable)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "true"],
        capture_output=True,
    )
    return None if probe.returncode else [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def _zsar(prefix: list[str], *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ZSAR_NO_PROGRESS="1")
    argv = [*prefix, sys.executable, "-m", "zsar_cli", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def _check_one_line(proc: subprocess.CompletedProcess[str], *names: str) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "internal error" not in lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def test_permission_denied_read_and_write_are_their_own_lines(chain, tmp_path):
    """A read-only output folder named the hidden lock file; an unreadable artifact looked
    corrupt ("not a readable Parquet artifact ([Errno 13] ...)"); an unreadable labels file was
    a usage error of three lines."""
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be refused")
    locked = tmp_path / "locked"
    locked.mkdir()
    emb = tmp_path / "emb.parquet"
    shutil.copy(chain["emb"], emb)
    labels = tmp_path / "labels.txt"
    shutil.copy(chain["labels"], labels)
    frames = tmp_path / "frames.parquet"
    shutil.copy(chain["frames"], frames)
    locked.chmod(0o555)
    try:
        proc = _zsar(
            prefix, "encode", frames, "-m", "builtin:world-clip", "-o", "locked/e.parquet",
            cwd=tmp_path,
        )  # fmt: skip
        line = _check_one_line(proc, "locked/e.parquet", "permission denied")
        assert ".lock" not in line and os.listdir(locked) == []
        emb.chmod(0)
        proc = _zsar(prefix, "classify", emb, "-l", labels, "-o", "p.parquet", cwd=tmp_path)
        line = _check_one_line(proc, str(emb), "cannot read it: permission denied")
        assert "Errno" not in line
        emb.chmod(0o644)
        labels.chmod(0)
        proc = _zsar(prefix, "classify", emb, "-l", labels, "-o", "p.parquet", cwd=tmp_path)
        _check_one_line(proc, str(labels), "permission denied")
        assert not (tmp_path / "p.parquet").exists()
    finally:
        locked.chmod(0o755)
        emb.chmod(0o644)
        labels.chmod(0o644)


def test_read_only_file_system_is_its_own_line(chain, tmp_path):
    """EROFS came through the generic fallback, naming the hidden lock file."""
    unshare = shutil.which("unshare")
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    if unshare is None:
        pytest.skip("no unshare to mount a read-only file system")
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {mount_point}"],
        capture_output=True,
    )
    if probe.returncode:
        pytest.skip("cannot mount a read-only tmpfs in a user namespace here")
    frames = tmp_path / "frames.parquet"
    shutil.copy(chain["frames"], frames)
    env = dict(os.environ, PYTHONPATH=str(ROOT), ZSAR_NO_PROGRESS="1")
    script = (
        f"mount -t tmpfs -o ro tmpfs {mount_point} && exec {sys.executable} -m zsar_cli "
        f"encode {frames} -m builtin:world-clip -o {mount_point}/e.parquet"
    )
    proc = subprocess.run(
        [unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    line = _check_one_line(proc, f"{mount_point}/e.parquet", "read-only file system")
    assert ".lock" not in line


# ---------------------------------------------------------------------------------------------
# Names from the user's files on the terminal


def test_brackets_and_control_characters_in_names_reach_the_terminal_as_text(
    chain, runner, tmp_path
):
    """A video named "clip[/x].mp4" crashed the status line (rich markup: internal error, exit
    70); "[draft]" vanished from it; escape sequences from ground truth went to the terminal."""
    (tmp_path / "clip[").mkdir()
    broken = tmp_path / "clip[" / "x][draft].mp4"  # the message shows ".../clip[/x][draft].mp4"
    broken.write_bytes(b"not a video")
    out = tmp_path / "f.parquet"
    result = run(runner, "extract-frames", broken, "-n", "1", "-o", out)
    assert result.exit_code == 1, result.output
    assert "clip[/x][draft].mp4" in result.stderr and "internal error" not in result.stderr
    gt = tmp_path / "gt.csv"
    gt.write_text(
        "video,label\nv\x1b[31m1.mp4,a red circle\n"
        + "".join(
            f"{vid},{label}\n"
            for vid, label in zip(read_pred_ids(chain["pred"]), ["a red circle"] * 3, strict=False)
        )
    )
    result = run(runner, "score", chain["pred"], "--gt", gt)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "v?[31m1" in result.stderr


def read_pred_ids(path: Path) -> list[str]:
    from zsar_cli.artifacts import read_artifact

    return sorted(set(read_artifact(path).table.column("video_id").to_pylist()))


# ---------------------------------------------------------------------------------------------
# Malformed files that were internal errors (exit 70) or silent wrong answers; most were found
# by tests/test_fuzz.py (non-UTF-8 JSON and metadata, a flipped byte in a data page)


def test_activitynet_json_that_is_not_utf8_or_nests_too_deep(chain, runner, tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_bytes(b'{"database": {"v\xff1": {}}}')
    result = run(runner, "score", chain["intervals"], "--gt", gt)
    assert "not UTF-8" in assert_one_line(result, str(gt))
    gt.write_text("[" * 100_000 + "]" * 100_000)
    result = run(runner, "score", chain["intervals"], "--gt", gt)
    assert "nested too deeply" in assert_one_line(result, str(gt))


def test_descriptions_json_of_the_wrong_shape(chain, runner, tmp_path):
    """A number for 'descriptors' or for the 'descriptions' list was iterated (TypeError)."""
    desc = tmp_path / "d.json"
    argv = ["encode-text", "-l", chain["labels"], "--descriptions", desc, "-m", CLIP]
    for doc, words in (
        ('{"descriptions": 5}', "expected a JSON list"),
        ('[{"label": "a red circle", "descriptors": 5}]', "list of strings"),
        ('[{"label": "a red circle", "description": {"a": 1}}]', "must be a string"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ):
        desc.write_text(doc)
        line = assert_one_line(run(runner, *argv, "-o", tmp_path / "t.parquet"), str(desc))
        assert words in line, line
    assert not (tmp_path / "t.parquet").exists()


def test_artifact_metadata_that_is_not_utf8(chain, runner, tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(chain["pred"])
    meta = {**table.schema.metadata, b"zsar.config": b"\xba\xff"}
    bad = tmp_path / "pred.parquet"
    pq.write_table(table.replace_schema_metadata(meta), bad)
    assert "corrupt zsar metadata" in assert_one_line(run(runner, "score", bad), str(bad))


def test_a_flipped_byte_in_a_data_page_is_refused_not_read(chain, runner, tmp_path):
    """zstd decoded a page with a flipped byte into another score, and `score` answered with
    exit 0; artifacts now carry page checksums, verified on read."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(chain["pred"]).metadata
    names = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
    column = meta.row_group(0).column(names.index("score"))
    data = bytearray(chain["pred"].read_bytes())
    start = column.dictionary_page_offset if column.has_dictionary_page else None
    end = (start or column.data_page_offset) + column.total_compressed_size
    refused = 0
    for offset in range(end - 24, end):  # the page's compressed bytes, past its header
        mutated = bytearray(data)
        mutated[offset] ^= 0x01
        bad = tmp_path / f"p{offset}.parquet"
        bad.write_bytes(bytes(mutated))
        result = run(runner, "score", bad, "--json")
        if result.exit_code == 0:
            assert json.loads(result.stdout) == json.loads(
                run(runner, "score", chain["pred"], "--json").stdout
            )
            raise AssertionError(f"a flipped byte at {offset} was read as data")
        assert_one_line(result, bad.name)
        refused += 1
    assert refused == 24


def test_labels_file_with_a_bom_or_control_characters(chain, runner, tmp_path):
    """A BOM became part of the first label ("\\ufeffa red circle" then matched nothing); an
    escape sequence in a label went into prompts and status lines."""
    from zsar_cli.artifacts import read_artifact

    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"\xef\xbb\xbfa red circle\na blue square\n")
    out = tmp_path / "t.parquet"
    ok(runner, "encode-text", "-l", labels, "-m", CLIP, "--templates", "none", "-o", out)
    assert read_artifact(out).meta.extra_json("labels") == ["a red circle", "a blue square"]
    labels.write_bytes(b"a red circle\na \x1b[31mblue\x1b[0m square\n")
    result = run(runner, "encode-text", "-l", labels, "-m", CLIP, "-o", tmp_path / "u.parquet")
    assert "control character" in assert_one_line(result, f"{labels}:2")
    assert not (tmp_path / "u.parquet").exists()


def test_a_damaged_page_header_is_refused_not_read_as_no_rows(chain, runner, tmp_path):
    """A page header (which page checksums do not cover) whose page type byte changed made
    pyarrow skip the page without an error: `classify` then answered exit 0 with other
    predictions (found by tests/test_fuzz.py). Rows read are now checked against the footer."""
    import pyarrow.parquet as pq

    source = chain["emb"]
    argv = ["classify", "-l", chain["labels"], "-m", CLIP, "--json"]
    intact = json.loads(run(runner, argv[0], source, *argv[1:]).stdout)
    meta = pq.ParquetFile(source).metadata.row_group(0)
    data = source.read_bytes()
    for i in range(meta.num_columns):
        column = meta.column(i)
        mutated = bytearray(data)
        mutated[column.data_page_offset + 1] = 2  # page type 1 (an index page): skipped
        bad = tmp_path / f"emb{i}.parquet"
        bad.write_bytes(bytes(mutated))
        result = run(runner, argv[0], bad, *argv[1:])
        if result.exit_code == 0:
            assert json.loads(result.stdout) == intact, column.path_in_schema
        else:
            assert_one_line(result, bad.name)


def test_a_full_disk_names_the_output(chain, tmp_path):
    """pyarrow's "Error writing bytes to file. Detail: [errno 28] No space left on device"
    named no file, and left an empty checkpoint folder."""
    unshare = shutil.which("unshare")
    small = tmp_path / "small"
    small.mkdir()
    if unshare is None:
        pytest.skip("no unshare to mount a small file system")
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {small}"],
        capture_output=True,
    )
    if probe.returncode:
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    env = dict(os.environ, PYTHONPATH=str(ROOT), ZSAR_NO_PROGRESS="1", COLUMNS="1000")
    script = (
        f"mount -t tmpfs -o size=16k tmpfs {small} && {sys.executable} -m zsar_cli "
        f"extract-frames {chain['videos']} -n 8 -o {small}/f.parquet; code=$?; "
        f"ls -A {small}; exit $code"
    )
    proc = subprocess.run(
        [unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    line = _check_one_line(proc, f"{small}/f.parquet", "no space left")
    assert "errno" not in line.lower()
    # No output, no temp file, no empty checkpoint folder (16 kB: no video fits, so there is
    # nothing a rerun could resume).
    assert proc.stdout == "", proc.stdout
