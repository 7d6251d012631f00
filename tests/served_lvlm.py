"""A local OpenAI-compatible chat-completions server backed by zsar's own HF backend.

    python -m tests.served_lvlm --model builtin:world-lvlm [--port 0]

It serves `/v1/chat/completions` the way vLLM does for zsar's requests: the images (data URLs)
and text of the one user turn go through the model's own chat template and processor
(`HFLVLM.build_inputs`), and the answer carries the next-token `logprobs` with `top_logprobs`
(log-softmax in float64 of the local logits, token texts decoded); with `max_tokens > 1` and no
log-probs it generates greedily. It listens on 127.0.0.1 only and prints `PORT <n>` once ready.

With `--text` the model is a text generator (`describe`'s `hf:` backend): a request's
`response_format` `json_schema` is honoured the way vLLM's guided decoding does, by decoding
under that schema (zsar's own constraint, `generate_records`); `json_object` and no format
generate plain greedy text (this server has no JSON mode), which then need not parse. Every
answer carries a `system_fingerprint`.

For the tests it also counts requests and injects faults, set through `POST /control`:
`{"fail": [[429, 2], [500, 1]]}` answers the next requests with those statuses (429 with
`Retry-After: 1`), `{"delay": [3.0, 1]}` holds the next request(s) that many seconds,
`{"fail_after": [N, 400]}` fails every request after the next N successful ones,
`{"require_key": "..."}` wants that bearer token, `{"reset": true}` clears counters and faults.
`GET /stats` → `{"requests", "completions", "failed", "delayed"}`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.model_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = self.completions = self.failed = self.delayed = 0
        self.fail: list[list[int]] = []
        self.delay: list[float] = []
        self.fail_after: list[int] | None = None
        self.require_key: str | None = None


def decode_image(url: str) -> np.ndarray:
    from PIL import Image

    header, _, data = url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise ValueError("only base64 data URLs are served here")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def parse_turn(body: dict[str, Any]) -> tuple[list[np.ndarray], str]:
    (message,) = [m for m in body["messages"] if m["role"] == "user"]
    content = message["content"]
    if isinstance(content, str):
        return [], content
    images = [decode_image(c["image_url"]["url"]) for c in content if c["type"] == "image_url"]
    text = "".join(c["text"] for c in content if c["type"] == "text")
    return images, text


def completion(lvlm: Any, body: dict[str, Any], name: str) -> dict[str, Any]:
    import torch

    images, text = parse_turn(body)
    max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    if body.get("logprobs"):
        k = int(body.get("top_logprobs") or 0)
        logits = lvlm.next_token_logits(lvlm.build_inputs([images], [text]))[0]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        values, ids = torch.topk(logprobs, max(1, k))
        tokenizer = lvlm.tokenizer

        def entry(token_id: int, logprob: float) -> dict[str, Any]:
            token = tokenizer.decode([token_id])
            return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

        top = [entry(int(i), float(v)) for v, i in zip(values, ids, strict=True)]
        first = dict(top[0])
        first["top_logprobs"] = top[:k] if k else []
        choice["message"] = {"role": "assistant", "content": first["token"]}
        choice["logprobs"] = {"content": [first]}
    else:
        (answer,) = lvlm.generate([images], [text], max_tokens)
        choice["message"] = {"role": "assistant", "content": answer}
        choice["logprobs"] = None
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [choice],
    }


def record_schema_of(schema: dict[str, Any]) -> Any:
    """A JSON Schema of describe's shape (string and list-of-string properties) as the
    `RecordSchema` the constrained decoder takes."""
    from zsar_cli.backends.text_base import ListField, RecordSchema, StringField

    fields: list[Any] = []
    for name, prop in schema["properties"].items():
        if prop["type"] == "string":
            fields.append(StringField(name, prop["maxLength"], prop.get("pattern") == r"\?$"))
        else:
            items = prop["items"]
            fields.append(ListField(name, items["maxLength"], prop["minItems"], prop["maxItems"]))
    return RecordSchema(tuple(fields))


def text_completion(generator: Any, body: dict[str, Any], name: str) -> dict[str, Any]:
    _, prompt = parse_turn(body)
    max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = record_schema_of(response_format["json_schema"]["schema"])
        (answer,) = generator.generate_records([prompt], schema, max_tokens)
    else:
        (answer,) = generator.generate_text([prompt], max_tokens)
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": "fp_test",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": answer},
                "logprobs": None,
            }
        ],
    }


def make_handler(
    lvlm: Any, name: str, state: State, text: bool = False
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def read_body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return dict(json.loads(self.rfile.read(length) or b"{}"))

        def do_GET(self) -> None:
            if self.path == "/stats":
                with state.lock:
                    stats = {
                        "requests": state.requests,
                        "completions": state.completions,
                        "failed": state.failed,
                        "delayed": state.delayed,
                    }
                self.send_json(200, stats)
            elif self.path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": name, "object": "model"}]})
            else:
                self.send_json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = self.read_body()
            if self.path == "/control":
                with state.lock:
                    if body.get("reset"):
                        state.reset()
                    state.fail = [list(f) for f in body.get("fail", state.fail)]
                    if "delay" in body:
                        seconds, count = body["delay"]
                        state.delay = [float(seconds)] * int(count)
                    if "fail_after" in body:
                        state.fail_after = body["fail_after"]
                    if "require_key" in body:
                        state.require_key = body["require_key"]
                self.send_json(200, {"ok": True})
                return
            if self.path != "/v1/chat/completions":
                self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            with state.lock:
                state.requests += 1
                status = None
                if state.fail:
                    status = state.fail[0][0]
                    state.fail[0][1] -= 1
                    if state.fail[0][1] <= 0:
                        state.fail.pop(0)
                elif state.fail_after is not None and state.completions >= state.fail_after[0]:
                    status = state.fail_after[1]
                delay = state.delay.pop(0) if state.delay and status is None else 0.0
                key = state.require_key
                if status is not None:
                    state.failed += 1
                if delay:
                    state.delayed += 1
            if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
                with state.lock:
                    state.failed += 1
                self.send_json(401, {"error": {"message": "Invalid API key", "type": "auth"}})
                return
            if status is not None:
                extra = {"Retry-After": "1"} if status == 429 else {}
                self.send_json(status, {"error": {"message": f"injected {status}"}}, extra)
                return
            if delay:
                time.sleep(delay)
            if body.get("model") != name:
                self.send_json(404, {"error": {"message": f"model {body.get('model')!r}"}})
                return
            try:
                with state.model_lock:
                    answer = text_completion if text else completion
                    payload = answer(lvlm, body, name)
            except Exception as exc:  # a bad request: say so, as servers do
                self.send_json(400, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                return
            with state.lock:
                state.completions += 1
            # The client may have given up (a timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_json(200, payload)

    return Handler


@contextlib.contextmanager
def running(*args: str) -> Any:
    """This server in a subprocess on 127.0.0.1 (`args`: its command line); yields its base URL
    once it listens, and stops it afterwards (for the tests' module fixtures)."""
    import os
    import select
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=f"{repo}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.served_lvlm", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 180)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"test server did not start: {line!r} {proc.stderr.read()}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:world-lvlm")
    parser.add_argument("--name", default="world-lvlm", help="the model name clients send")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--text", action="store_true", help="serve a text model (describe)")
    args = parser.parse_args(argv)

    import torch

    from zsar_cli.backends import load_lvlm, load_text_generator

    torch.set_num_threads(1)
    load = load_text_generator if args.text else load_lvlm
    model = load(args.model, device="cpu")
    handler = make_handler(model, args.name, State(), text=args.text)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
