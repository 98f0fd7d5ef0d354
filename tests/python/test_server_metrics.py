"""/metrics content, and client disconnects aborting engine work at once (KV blocks freed)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from server_utils import shared_server

LONG = {"prompt": "Tell me a long story", "max_tokens": 2000, "ignore_eos": True,
        "temperature": 1.0, "seed": 1}


@pytest.fixture(scope="session")
def server():
    return shared_server()


def _running(server) -> float:
    return server.metrics()["pagedllm:num_requests_running"]


def _wait_running(server, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _running(server) < 1:
        assert time.monotonic() < deadline, "the request never started running"
        time.sleep(0.02)


def test_metrics_content(server):
    before = server.metrics()
    r = httpx.post(f"{server.url}/v1/completions",
                   json={"prompt": "Hello", "max_tokens": 5, "temperature": 0}, timeout=30)
    assert r.status_code == 200
    after = server.wait_idle()
    for name in ("pagedllm:time_to_first_token_seconds_count",
                 "pagedllm:e2e_request_latency_seconds_count",
                 "pagedllm:time_per_output_token_seconds_count",
                 "pagedllm:request_queue_time_seconds_count",
                 "pagedllm:request_prompt_tokens_count"):
        assert after[name] == before.get(name, 0) + 1, name
    assert after["pagedllm:generation_tokens_total"] >= before.get(
        "pagedllm:generation_tokens_total", 0) + 5
    assert after["pagedllm:prompt_tokens_total"] > 0
    key = "pagedllm:request_success_total[('finished_reason', 'length')]"
    assert after[key] == before.get(key, 0) + 1
    assert after["pagedllm:num_kv_blocks_total"] > 0
    assert after["pagedllm:kv_cache_usage_perc"] == 0.0
    for name in ("pagedllm:num_preemptions_total", "pagedllm:prefix_cache_queries_total",
                 "pagedllm:prefix_cache_hits_total", "pagedllm:engine_alive"):
        assert name in after, name
    text = httpx.get(f"{server.url}/metrics").text
    assert "# TYPE pagedllm:time_to_first_token_seconds histogram" in text


def test_kv_usage_while_running(server):
    with httpx.stream("POST", f"{server.url}/v1/completions", json={**LONG, "stream": True},
                      timeout=30) as r:
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        m = server.metrics()
        assert m["pagedllm:num_requests_running"] == 1
        assert m["pagedllm:num_kv_blocks_used"] >= 1
        assert 0 < m["pagedllm:kv_cache_usage_perc"] <= 1
    m = server.wait_idle(timeout=2.0)
    assert m["pagedllm:num_requests_running"] == 0 and m["pagedllm:num_kv_blocks_used"] == 0


def test_stream_disconnect_aborts(server):
    before = server.metrics().get("pagedllm:request_aborted_total", 0)
    with httpx.stream("POST", f"{server.url}/v1/chat/completions",
                      json={"messages": [{"role": "user", "content": "hi"}], "stream": True,
                            **{k: v for k, v in LONG.items() if k != "prompt"}},
                      timeout=30) as r:
        for i, line in enumerate(r.iter_lines()):
            if i > 10:
                break
    start = time.monotonic()
    m = server.wait_idle(timeout=2.0)
    assert m["pagedllm:num_requests_running"] == 0, "the engine still runs the request"
    assert m["pagedllm:num_kv_blocks_used"] == 0
    assert m["pagedllm:request_aborted_total"] == before + 1
    assert time.monotonic() - start < 2.0


def test_non_stream_disconnect_aborts(server):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/completions", json=LONG, timeout=httpx.Timeout(
            30, read=0.5))
    m = server.wait_idle(timeout=2.0)
    assert m["pagedllm:num_requests_running"] == 0, "the engine still runs the request"
    assert m["pagedllm:num_kv_blocks_used"] == 0


def test_abort_midway_keeps_others_whole(server):
    payload = {"prompt": "abc", "max_tokens": 40, "temperature": 0}
    expected = httpx.post(f"{server.url}/v1/completions", json=payload,
                          timeout=30).json()["choices"][0]["text"]
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{server.url}/v1/completions",
                           json={**LONG, "stream": True}) as doomed:
            next(doomed.iter_lines())
            with client.stream("POST", f"{server.url}/v1/completions",
                               json={**payload, "stream": True}) as kept:
                text = ""
                for line in kept.iter_lines():
                    if line.startswith("data: {"):
                        text += json.loads(line[6:])["choices"][0]["text"]
    assert text == expected
    server.wait_idle(timeout=2.0)
