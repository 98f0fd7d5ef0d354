"""API keys, served model names, body-size limits, the waiting-queue limit (503), and graceful
shutdown on SIGTERM."""

from __future__ import annotations

import os
import tempfile
import threading
import time

import httpx
import pytest
from server_utils import ServerProcess, shared_server

openai = pytest.importorskip("openai")

KEY = "test-secret"
TEMPLATE = os.path.join(tempfile.gettempdir(), "pagedllm-test-chat-template.jinja")
LONG = {"prompt": "Tell me a long story", "max_tokens": 2000, "ignore_eos": True,
        "stream": True}


@pytest.fixture(scope="module")
def limited():
    with open(TEMPLATE, "w") as f:
        f.write("{% for m in messages %}[{{ m['role'] }}:{{ m['content'] }}]{% endfor %}"
                "{% if add_generation_prompt %}>{% endif %}")
    return shared_server("--served-model-name", "alpha", "beta", "--max-num-seqs", "1",
                         "--max-waiting-requests", "2", "--max-request-body-bytes", "4096",
                         "--chat-template", TEMPLATE, api_key=KEY)


def test_chat_template_flag(limited):
    r = httpx.post(f"{limited.url}/tokenize", headers=limited.headers(),
                   json={"messages": [{"role": "user", "content": "hi"}]})
    expected = [ord(c) for c in "[user:hi]>"]
    assert r.json()["tokens"] == expected


def test_api_key(limited):
    url = limited.url
    assert httpx.get(f"{url}/health").status_code == 200
    for path in ("/v1/models", "/metrics", "/version", "/openapi.json"):
        r = httpx.get(f"{url}{path}")
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "AuthenticationError"
        assert httpx.get(f"{url}{path}", headers={"Authorization": "Bearer wrong"}
                         ).status_code == 401
        assert httpx.get(f"{url}{path}", headers=limited.headers()).status_code == 200
    assert httpx.post(f"{url}/v1/completions", json={"prompt": "x"}).status_code == 401
    with openai.OpenAI(base_url=limited.base_url, api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.completions.create(model="alpha", prompt="x", max_tokens=1)


def test_served_model_names(limited):
    with openai.OpenAI(base_url=limited.base_url, api_key=KEY, max_retries=0) as client:
        assert [m.id for m in client.models.list().data] == ["alpha", "beta"]
        out = client.completions.create(model="beta", prompt="x", max_tokens=2)
        assert out.model == "beta"
        out = client.chat.completions.create(messages=[{"role": "user", "content": "x"}],
                                             model="alpha", max_tokens=2)
        assert out.model == "alpha"
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="demo", prompt="x", max_tokens=1)


def test_oversize_body(limited):
    big = {"prompt": "x" * 5000, "max_tokens": 1}
    r = httpx.post(f"{limited.url}/v1/completions", json=big, headers=limited.headers())
    assert r.status_code == 413 and r.json()["error"]["type"] == "RequestTooLargeError"

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(f"{limited.url}/v1/completions", content=chunks(),
                   headers=limited.headers())
    assert r.status_code == 413
    ok = httpx.post(f"{limited.url}/v1/completions", json={"prompt": "x", "max_tokens": 1},
                    headers=limited.headers())
    assert ok.status_code == 200


def test_waiting_queue_full_is_503(limited):
    headers = limited.headers()
    with httpx.Client(timeout=30, headers=headers) as client:
        streams = []
        try:
            for _ in range(3):
                stream = client.stream("POST", f"{limited.url}/v1/completions",
                                       json={**LONG, "model": "alpha"})
                response = stream.__enter__()
                assert response.status_code == 200
                streams.append(stream)
            r = client.post(f"{limited.url}/v1/completions",
                            json={"prompt": "x", "max_tokens": 1})
            assert r.status_code == 503
            assert "waiting" in r.json()["error"]["message"]
            r = client.post(f"{limited.url}/v1/completions",
                            json={"prompt": "x", "max_tokens": 1, "n": 3})
            assert r.status_code == 503
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)
    m = limited.wait_idle(timeout=3.0)
    assert m["pagedllm:num_requests_running"] == 0
    assert m["pagedllm:request_rejected_total"] >= 2
    r = httpx.post(f"{limited.url}/v1/completions", json={"prompt": "x", "max_tokens": 1},
                   headers=headers)
    assert r.status_code == 200


def test_waiting_queue_counts_best_of(limited):
    """A request queues best_of samples, not n: n=1, best_of=3 overflows a queue of 2 as
    n=3 does; best_of=2 fits."""
    url = f"{limited.url}/v1/completions"
    with httpx.Client(timeout=30, headers=limited.headers()) as client:
        limited.wait_idle(timeout=10.0)
        for extra in ({"n": 3}, {"n": 1, "best_of": 3}):
            r = client.post(url, json={"prompt": "x", "max_tokens": 1, **extra})
            assert r.status_code == 503, (extra, r.text)
            assert "waiting" in r.json()["error"]["message"]
        r = client.post(url, json={"prompt": "x", "max_tokens": 2, "n": 1, "best_of": 2})
        assert r.status_code == 200, r.text
        assert len(r.json()["choices"]) == 1


def test_sigterm_graceful_shutdown():
    server = ServerProcess("--shutdown-timeout", "1")
    received: list[str] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def stream() -> None:
        try:
            with httpx.stream("POST", f"{server.url}/v1/completions", json=LONG,
                              timeout=30) as r:
                for line in r.iter_lines():
                    received.append(line)
                    started.set()
        except httpx.HTTPError as exc:
            errors.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert started.wait(30)
    start = time.monotonic()
    assert server.stop(timeout=30) == 0, server.output()
    assert time.monotonic() - start < 10
    thread.join(10)
    assert not thread.is_alive()
    assert "Traceback" not in server.output(), server.output()
    events = [line for line in received if line]
    assert len(events) > 2
    assert events[-1] == "data: [DONE]"
    assert "shutting down" in events[-2]


def test_sigterm_idle_exits_zero():
    server = ServerProcess()
    assert server.stop(timeout=30) == 0, server.output()


def test_engine_failure_answers_503():
    import asyncio

    from pagedllm.engine import LLMEngine
    from pagedllm.entrypoints.openai.app import build_app

    engine = LLMEngine("demo", num_threads=2, log_stats=False)
    app = build_app(engine)
    async_engine = app.state.serving.engine

    def failing_step():
        raise RuntimeError("simulated engine failure")

    async def run() -> None:
        async_engine.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"prompt": "hi", "max_tokens": 2}
            assert (await client.post("/v1/completions", json=body)).status_code == 200
            engine.step = failing_step
            r = await client.post("/v1/completions", json=body)
            assert r.status_code == 503 and "simulated" in r.json()["error"]["message"]
            assert (await client.get("/health")).status_code == 503
            assert (await client.post("/v1/completions", json=body)).status_code == 503
            assert (await client.get("/v1/models")).status_code == 200
        await async_engine.shutdown()

    asyncio.run(run())
