"""Load: 256 concurrent streaming clients (completions and chat), a quarter of them hanging up
at random points. Every finished stream is whole and equal to offline generation; afterwards
nothing runs and every KV block is free.

Greedy decoding: seeded sampling in the engine can flip a draw when the batch composition
changes (float rounding of batched matmuls near a CDF boundary), and a server's batches never
match an offline run's.
"""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest
from server_utils import NUM_THREADS, shared_server

from pagedllm import LLM, SamplingParams

NUM_CLIENTS = 256
MAX_TOKENS = 24
WORDS = ["alpha", "beta", "gamma", "delta", "paged", "cache", "token", "block", "kernel"]


@pytest.fixture(scope="module")
def server():
    return shared_server()


def _requests() -> list[dict]:
    rng = random.Random(2024)
    requests = []
    for i in range(NUM_CLIENTS):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        common = {"max_tokens": MAX_TOKENS, "temperature": 0.0, "seed": i, "ignore_eos": True,
                  "stream": True}
        if i % 2:
            requests.append({"path": "/v1/chat/completions", "disconnect_after": None,
                             "body": {**common, "messages": [{"role": "user", "content": text}]}})
        else:
            requests.append({"path": "/v1/completions", "disconnect_after": None,
                             "body": {**common, "prompt": text}})
        if i % 4 == 3:
            requests[-1]["disconnect_after"] = rng.randint(0, MAX_TOKENS)
    return requests


def _expected(requests: list[dict]) -> list[str]:
    llm = LLM("demo", num_threads=NUM_THREADS, log_stats=False, seed=0)
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True)
    chats = [i for i, r in enumerate(requests) if "messages" in r["body"]]
    plain = [i for i, r in enumerate(requests) if "prompt" in r["body"]]
    texts: list[str] = [""] * len(requests)
    outputs = llm.chat([requests[i]["body"]["messages"] for i in chats], params, use_tqdm=False)
    outputs += llm.generate([requests[i]["body"]["prompt"] for i in plain], params,
                            use_tqdm=False)
    for i, output in zip(chats + plain, outputs):
        texts[i] = output.outputs[0].text
    return texts


async def _client(http: httpx.AsyncClient, url: str, request: dict) -> dict:
    text, finish, usage, events = "", None, None, 0
    async with http.stream("POST", url + request["path"],
                           json={**request["body"], "stream_options": {"include_usage": True}}
                           ) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if request["disconnect_after"] is not None and events >= request["disconnect_after"]:
                return {"disconnected": True}
            if not line.startswith("data: "):
                continue
            events += 1
            if line == "data: [DONE]":
                break
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk["choices"]:
                delta = choice.get("delta", choice)
                text += delta.get("content") or delta.get("text") or ""
                finish = choice["finish_reason"] or finish
    return {"disconnected": False, "text": text, "finish": finish, "usage": usage}


async def _run_all(url: str, requests: list[dict]) -> list[dict]:
    limits = httpx.Limits(max_connections=NUM_CLIENTS + 16,
                          max_keepalive_connections=NUM_CLIENTS + 16)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        return await asyncio.gather(*(_client(http, url, r) for r in requests))


def test_concurrent_streams_with_disconnects(server):
    requests = _requests()
    expected = _expected(requests)
    before = server.metrics()
    results = asyncio.run(_run_all(server.url, requests))
    completed = 0
    for i, (request, result) in enumerate(zip(requests, results)):
        if result["disconnected"]:
            continue
        completed += 1
        assert result["text"] == expected[i], f"client {i}"
        assert result["finish"] == "length", f"client {i}"
        assert result["usage"]["completion_tokens"] == MAX_TOKENS, f"client {i}"
    assert completed >= NUM_CLIENTS * 3 // 4
    after = server.wait_idle(timeout=10)
    assert after["pagedllm:num_requests_running"] == 0
    assert after["pagedllm:num_requests_waiting"] == 0
    assert after["pagedllm:num_kv_blocks_used"] == 0
    assert after["pagedllm:kv_cache_usage_perc"] == 0
    finished = (after["pagedllm:e2e_request_latency_seconds_count"]
                - before.get("pagedllm:e2e_request_latency_seconds_count", 0))
    aborted = (after["pagedllm:request_aborted_total"]
               - before.get("pagedllm:request_aborted_total", 0))
    assert finished + aborted == NUM_CLIENTS
    assert httpx.get(f"{server.url}/health").status_code == 200
