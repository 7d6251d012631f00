"""`describe` over a served text model (`--model openai:URL#MODEL`, issue 21 item 4) against a
real local HTTP server (tests/served_lvlm.py --text, a subprocess on 127.0.0.1).

The server decodes under the request's `response_format` JSON Schema the way vLLM's guided
decoding does, so a random-init model's answers are valid records on the first try, and equal
the local `hf:` backend's records for the same model (the served path changes the transport,
not the answers). Without a schema (`json_object`, `none`) the same model's plain text is not
JSON: describe regenerates once and then fails in one line, caching nothing.
"""

from __future__ import annotations

import json

import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.backends import load_text_generator
from zsar_cli.backends.openai_text import OpenAITextGenerator
from zsar_cli.cli.app import app
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.stages.describe import DescribeConfig, describe_labels, record_schema

from .served_lvlm import running
from .test_describe import labels_50
from .text_lm import build_text_lm

NAME = "tiny-smollm2"
BUDGET = 48  # a little over the shortest record with this tokenizer (see test_describe)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_text_lm(tmp_path_factory.mktemp("lm") / "tiny-smollm2", "tiny")


@pytest.fixture(scope="module")
def server(tiny_lm):
    with running("--text", "--model", f"hf:{tiny_lm}", "--name", NAME) as url:
        yield f"openai:{url}/v1#{NAME}"


def test_served_records_valid_first_try_and_equal_to_local(server, tiny_lm, tmp_path):
    labels = labels_50()[:12]
    cfg = DescribeConfig(model=server, max_new_tokens=BUDGET, batch_size=4)
    gen = load_text_generator(server, response_format="json_schema", concurrency=4)
    assert isinstance(gen, OpenAITextGenerator) and gen.revision == f"served:{NAME}"
    served = describe_labels(labels, gen, cfg, tmp_path / "served")
    assert (served.generated, served.first_try_valid) == (12, 12)
    assert gen.fingerprints == {"fp_test"}
    local_cfg = DescribeConfig(model=f"hf:{tiny_lm}", max_new_tokens=BUDGET, batch_size=4)
    local = describe_labels(
        labels, load_text_generator(f"hf:{tiny_lm}", device="cpu"), local_cfg, tmp_path / "local"
    )
    # the same greedy, schema-constrained decoding: the same records, field by field
    keys = ("label", "description", "descriptors", "start_question", "end_question", "status")
    assert [[r[k] for k in keys] for r in served.rows] == [[r[k] for k in keys] for r in local.rows]


def test_request_carries_the_schema_and_each_format_keys_its_own_cache(server, tmp_path):
    schema = record_schema(8)
    gen = load_text_generator(server, response_format="json_schema")
    body = gen.body("describe x", schema, 64)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == schema.json_schema()
    assert body["temperature"] == 0 and body["max_tokens"] == 64
    assert "response_format" not in load_text_generator(server, response_format="none").body(
        "x", schema, 8
    )
    with pytest.raises(ConfigError, match="--response-format 'xml'"):
        load_text_generator(server, response_format="xml")
    # the format is part of a served model's cache key (not of a local model's)
    a = DescribeConfig(model=server, response_format="json_schema").provenance()
    b = DescribeConfig(model=server, response_format="json_object").provenance()
    assert a["response_format"] == "json_schema" and b["response_format"] == "json_object"
    assert "response_format" not in DescribeConfig(model="hf:x/y").provenance()


def test_without_a_schema_plain_text_is_regenerated_then_one_line(server, tmp_path):
    gen = load_text_generator(server, response_format="json_object")
    cfg = DescribeConfig(model=server, max_new_tokens=BUDGET, response_format="json_object")
    with pytest.raises(ModelError, match=r"not valid records.*--from"):
        describe_labels(["playing guitar"], gen, cfg, tmp_path / "c")
    assert gen.sent == 2  # the first answer and one regeneration
    assert not (tmp_path / "c").exists()


def test_cli_served_describe_artifact_and_cache(server, tmp_path, runner):
    labels = tmp_path / "labels.txt"
    labels.write_text("playing guitar\nriding horse\ncutting bread\n")
    out = tmp_path / "desc.parquet"
    args = ["describe", "-l", str(labels), "-o", str(out), "-m", server]
    args += ["--max-new-tokens", str(BUDGET), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "valid on the first try 3/3" in " ".join(result.output.split())
    art = read_artifact(out, "descriptions")
    assert art.meta.config["model_revision"] == f"served:{NAME}"
    assert art.meta.config["system_fingerprints"] == ["fp_test"]
    assert art.meta.config["response_format"] == "json_schema"
    assert len(art.table) == 3
    again = runner.invoke(app, [*args, "--force"])
    assert again.exit_code == 0 and "3 from cache" in " ".join(again.output.split())
    # another format is other settings: nothing reused, and here (no JSON mode) one line
    other = runner.invoke(app, [*args, "--force", "--response-format", "none"])
    assert other.exit_code == 1 and "not valid records" in other.output
    assert "Traceback" not in other.output
    json.loads(json.dumps(art.meta.config))  # provenance stays plain JSON
