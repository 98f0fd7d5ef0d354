"""Hostile input: hand-written bad bodies and schemathesis cases generated from /openapi.json
(valid and invalid) never get a 5xx, never crash the server, and leave it serving."""

from __future__ import annotations

import json

import httpx
import pytest
from server_utils import shared_server

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
except ImportError:
    schemathesis = None

FLAGS = ("--max-model-len", "32", "--max-request-body-bytes", "1MiB")
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize")
MSG = [{"role": "user", "content": "hi"}]
HUGE = 10**30

BAD_FIELDS = {
    "prompt": [123, {}, [], [[]], [1, "a"], [[1], "a"], True, [-1], [HUGE], [1.5], None,
               ["a", 1], "\ud800", [[1] * 40]],
    "messages": ["x", [], [1], [{"role": 1}], [{"role": "user", "content": 5}],
                 [{"role": "user", "content": [{"type": "image_url"}]}],
                 [{"role": "user", "content": [{"type": "text", "text": 1}]}],
                 [{"content": "x"}], [{"role": "user"}], [{"role": "user", "content": "\udfff"}],
                 [{"role": "user", "content": "x", "name": {"a": [1]}, "tool_calls": 5}]],
    "max_tokens": [-1, -HUGE, HUGE, 1e308, float("inf"), "5", True, 1.5, [], {}],
    "max_completion_tokens": [-1, HUGE, "x"],
    "n": [0, -1, 10**9, 1.5, "2"],
    "temperature": [-1, 1e308, -1e-9, "hot", None, [], HUGE],
    "top_p": [0, -0.5, 1.5, 1e308, "x"],
    "top_k": [-2, HUGE, 1.5, "x"],
    "min_p": [-1, 2, "x"],
    "presence_penalty": [-3, 3, HUGE],
    "frequency_penalty": [-3, 3, "x"],
    "repetition_penalty": [0, -1, HUGE, 1e308],
    "seed": [HUGE, -HUGE, 1.5, "x"],
    "stop": [1, [1, 2], "", [""], ["a" * 5000], ["x"] * 1000, {"a": 1}],
    "stop_token_ids": [[-1], [HUGE], "x", [1.5], [[1]]],
    "logprobs": [-1, 10**6, "x", 1.5],
    "top_logprobs": [-1, 21, HUGE],
    "min_tokens": [-1, HUGE, "x"],
    "best_of": [0, HUGE, "x"],
    "echo": ["yes", 1],
    "stream": ["yes", 1, {}],
    "stream_options": ["x", {"include_usage": "yes"}, []],
    "logit_bias": [{"1": 100}, "x"],
    "response_format": [{"type": "json_object"}, "x", {"type": 5}],
    "chat_template_kwargs": ["x", {"messages": 1}, {"tokenize": True}],
    "chat_template": ["{{ 1/0 }}"],
    "suffix": ["x"],
    "model": [5, "nope", "\ud800", ["demo"]],
    "tokens": [[-1], [HUGE], "x", [1.5], None],
    "add_special_tokens": ["x"],
    "ignore_eos": ["x"],
    "add_generation_prompt": ["x"],
    "continue_final_message": [True],
}

RAW_BODIES = [
    b"", b"   ", b"{", b"null", b"true", b"123", b'"a string"', b"[]", b"[1, 2]",
    b"\xff\xfe\xfd", b'{"prompt": "\xff"}', b'{"prompt": "x", "temperature": NaN}',
    b'{"prompt": "x", "temperature": Infinity}', b'{"prompt": "x", "max_tokens": -Infinity}',
    b'{"prompt": "x", "max_tokens": 1' + b"0" * 5000 + b"}",
    b"[" * 100000 + b"]" * 100000, b'{"a":' * 50000 + b"1" + b"}" * 50000,
    b'{"prompt": "x", "prompt": 5}', b'{"prompt": "x"} trailing', b"\x00\x00\x00\x00",
    b'{"messages": [{"role": "user", "content": "hi"}], "stream": true, "n": 0}',
]


@pytest.fixture(scope="module")
def server():
    return shared_server(*FLAGS)


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=60) as client:
        yield client


def _base(path: str) -> dict:
    if path == "/v1/chat/completions":
        return {"messages": MSG, "max_tokens": 2}
    if path == "/detokenize":
        return {"tokens": [72, 105]}
    return {"prompt": "hi", "max_tokens": 2}


def _post(http: httpx.Client, server, path: str, content: bytes) -> httpx.Response:
    return http.post(f"{server.url}{path}", content=content,
                     headers={"content-type": "application/json"})


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and error["type"], what


def test_bad_fields(server, http):
    for path in ENDPOINTS:
        for name, values in BAD_FIELDS.items():
            for value in values:
                body = json.dumps({**_base(path), name: value}).encode()
                _check(_post(http, server, path, body), f"{path} {name}={value!r:.60}")


def test_raw_bodies(server, http):
    for path in ENDPOINTS:
        for body in RAW_BODIES:
            _check(_post(http, server, path, body), f"{path} {body[:40]!r}")


def test_oversize_and_odd_requests(server, http):
    big = json.dumps({"prompt": "x" * (2 * 2**20)}).encode()
    r = _post(http, server, "/v1/completions", big)
    assert r.status_code == 413
    r = httpx.post(f"{server.url}/v1/completions", content=b'{"prompt": "hi"}',
                   headers={"content-type": "text/plain"}, timeout=30)
    assert r.status_code == 200
    assert httpx.get(f"{server.url}/v1/completions").status_code == 405
    assert httpx.post(f"{server.url}/v1/models").status_code == 405
    assert httpx.get(f"{server.url}/nope/../../etc/passwd").status_code == 404
    assert httpx.get(f"{server.url}/static/../app.py").status_code == 404


def test_valid_but_extreme(server, http):
    for body in ({"prompt": "hi", "max_tokens": 10**12, "n": 8, "temperature": 1e6},
                 {"prompt": [[1] * 31], "max_tokens": 5},
                 {"prompt": ["a"] * 64, "max_tokens": 3, "logprobs": 20, "echo": True},
                 {"prompt": "x", "stop": ["x"] * 64, "max_tokens": 5, "min_tokens": 5},
                 {"prompt": "x", "top_k": 2**31 - 1, "seed": 2**64 - 1, "max_tokens": 2},
                 {"prompt": "\u00e9\u4e2d\U0001f600", "max_tokens": 4, "echo": True,
                  "logprobs": 2}):
        r = _post(http, server, "/v1/completions", json.dumps(body).encode())
        _check(r, repr(body)[:80])
        assert r.status_code == 200, r.text


def test_still_serving_after_fuzz(server):
    r = httpx.post(f"{server.url}/v1/completions", json={"prompt": "hi", "max_tokens": 3},
                   timeout=30)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    m = server.wait_idle()
    assert m["pagedllm:num_requests_running"] == 0 and m["pagedllm:num_kv_blocks_used"] == 0
    assert server.proc.poll() is None
    log = server.output()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


if schemathesis is not None:
    @pytest.fixture(scope="module")
    def api_schema(server):
        return schemathesis.openapi.from_url(f"{server.url}/openapi.json")

    schema = schemathesis.pytest.from_fixture("api_schema")

    @schema.parametrize()
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def test_schemathesis_no_server_errors(case):
        response = case.call(timeout=60)
        assert response.status_code < 500, (case.method, case.path, case.body,
                                            response.text[:300])
else:
    def test_schemathesis_no_server_errors():
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
