"""The OpenAI-compatible server through the official `openai` client: completions, chat,
streaming, n>1, logprobs, stop strings, seeds, typed errors, and equality with offline
LLM.generate."""

from __future__ import annotations

import httpx
import pytest

openai = pytest.importorskip("openai")

from server_utils import NUM_THREADS, shared_server  # noqa: E402

from pagedllm import LLM, SamplingParams  # noqa: E402

PROMPTS = ["Hello, my name is", "The capital of France is", "1 2 3 4", "a"]
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is paged attention?"}]


@pytest.fixture(scope="session")
def server():
    return shared_server()


@pytest.fixture(scope="session")
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                       timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def llm():
    return LLM("demo", num_threads=NUM_THREADS, log_stats=False, seed=0)


def test_models_health_version(server, client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["demo"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.get(f"{server.url}/version").json()["version"]
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"]


def test_completion_basic(client):
    out = client.completions.create(model="demo", prompt="Hello", max_tokens=7,
                                    temperature=0)
    assert out.object == "text_completion"
    choice = out.choices[0]
    assert choice.finish_reason == "length" and len(choice.text) > 0
    assert out.usage.completion_tokens == 7
    assert out.usage.prompt_tokens == 6
    assert out.usage.total_tokens == 13


def test_chat_basic(client):
    out = client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=5,
                                         temperature=0)
    assert out.object == "chat.completion"
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 5


def test_completion_stream_equals_whole(client):
    kwargs = dict(model="demo", prompt=PROMPTS[0], max_tokens=24, temperature=0)
    whole = client.completions.create(**kwargs).choices[0].text
    chunks = list(client.completions.create(**kwargs, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole
    finals = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finals[-1] == "length" and all(f is None for f in finals[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 24


def test_chat_stream_equals_whole(client):
    kwargs = dict(model="demo", messages=MESSAGES, max_tokens=20, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].choices[0].finish_reason == "length"


def test_n_and_seed_reproducible(client):
    kwargs = dict(model="demo", prompt="Once upon", max_tokens=16, temperature=1.0, n=3,
                  seed=1234)
    first = client.completions.create(**kwargs)
    second = client.completions.create(**kwargs)
    texts = [c.text for c in sorted(first.choices, key=lambda c: c.index)]
    assert [c.index for c in sorted(first.choices, key=lambda c: c.index)] == [0, 1, 2]
    assert texts == [c.text for c in sorted(second.choices, key=lambda c: c.index)]
    assert len(set(texts)) > 1
    other = client.completions.create(**{**kwargs, "seed": 99})
    assert [c.text for c in sorted(other.choices, key=lambda c: c.index)] != texts
    assert first.usage.completion_tokens == 48


def test_n_streaming_chat(client):
    chunks = list(client.chat.completions.create(
        model="demo", messages=MESSAGES[1:2], max_tokens=8, n=2, temperature=1.0, seed=5,
        stream=True))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    whole = client.chat.completions.create(model="demo", messages=MESSAGES[1:2], max_tokens=8,
                                           n=2, temperature=1.0, seed=5)
    assert texts == {c.index: c.message.content for c in whole.choices}


def test_completion_logprobs(client):
    out = client.completions.create(model="demo", prompt="Hello", max_tokens=6,
                                    temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 6
    assert "".join(lp.tokens) == out.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob <= 0 and 3 <= len(top) <= 4
        assert top[token] == pytest.approx(logprob)
        assert max(top.values()) == pytest.approx(logprob)


def test_chat_logprobs(client):
    out = client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=5,
                                         temperature=0, logprobs=True, top_logprobs=2)
    content = out.choices[0].logprobs.content
    assert len(content) == 5
    assert "".join(t.token for t in content) == out.choices[0].message.content
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)
        assert entry.bytes == list(entry.token.encode())


def test_stop_string(client):
    base = client.completions.create(model="demo", prompt="Hello", max_tokens=30,
                                     temperature=0).choices[0].text
    stop = base[10:12]
    first = base.find(stop)
    out = client.completions.create(model="demo", prompt="Hello", max_tokens=30,
                                    temperature=0, stop=[stop, "never-there"])
    assert out.choices[0].text == base[:first]
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].model_extra["stop_reason"] == stop
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="demo", prompt="Hello", max_tokens=30, temperature=0, stop=stop, stream=True))
    assert streamed == base[:first]


def test_prompt_forms_and_choice_order(client, server):
    ids = httpx.post(f"{server.url}/tokenize", json={"prompt": "Hello"}).json()["tokens"]
    out = client.completions.create(model="demo", prompt=["Hello", "abc"], max_tokens=4,
                                    temperature=0, n=2)
    assert sorted(c.index for c in out.choices) == [0, 1, 2, 3]
    by_ids = client.completions.create(model="demo", prompt=ids, max_tokens=4, temperature=0)
    by_text = {c.index: c.text for c in out.choices}
    assert by_ids.choices[0].text == by_text[0] == by_text[1]
    nested = client.completions.create(model="demo", prompt=[ids, ids], max_tokens=4,
                                       temperature=0)
    assert [c.text for c in nested.choices] == [by_text[0]] * 2


def test_tokenize_detokenize(server):
    r = httpx.post(f"{server.url}/tokenize", json={"prompt": "Hi!"})
    assert r.json()["tokens"] == [256, 72, 105, 33] and r.json()["count"] == 4
    r = httpx.post(f"{server.url}/detokenize", json={"tokens": [72, 105]})
    assert r.json() == {"prompt": "Hi"}
    r = httpx.post(f"{server.url}/tokenize", json={"messages": MESSAGES[1:2]})
    assert r.json()["count"] > 4


def test_typed_errors(client, server):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="demo", prompt="x", max_tokens=-1)
    assert "max_tokens" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="demo", prompt=[1] * 2048, max_tokens=1)
    assert "2048" in str(info.value) and "2048 tokens" in str(info.value)
    long_chat = [{"role": "user", "content": "x" * 3000}]
    count = httpx.post(f"{server.url}/tokenize", json={"messages": long_chat}).json()["count"]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", messages=long_chat)
    assert "2048 tokens" in str(info.value) and f"{count} tokens" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="demo", messages=[{"role": "robot",
                                                                "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="demo", prompt="x", temperature=-1)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="demo", prompt="x", logit_bias={"1": 5})


def test_greedy_and_seeded_equal_offline(client, llm):
    for params in (SamplingParams(max_tokens=20, temperature=0),
                   SamplingParams(max_tokens=20, temperature=0.8, top_p=0.9, seed=7, n=2),
                   SamplingParams(max_tokens=20, temperature=1.0, top_k=20, seed=3,
                                  repetition_penalty=1.2, stop=["qa"])):
        offline = llm.generate(PROMPTS, params, use_tqdm=False)
        out = client.completions.create(
            model="demo", prompt=PROMPTS, max_tokens=params.max_tokens,
            temperature=params.temperature, top_p=params.top_p, n=params.n,
            seed=params.seed, stop=params.stop or None,
            extra_body={"top_k": params.top_k, "repetition_penalty": params.repetition_penalty})
        served = {c.index: (c.text, c.finish_reason) for c in out.choices}
        expected = {i * params.n + o.index: (o.text, o.finish_reason)
                    for i, r in enumerate(offline) for o in r.outputs}
        assert served == expected


def test_chat_equals_offline(client, llm):
    params = SamplingParams(max_tokens=16, temperature=0.7, seed=11)
    offline = llm.chat(MESSAGES, params, use_tqdm=False)[0].outputs[0].text
    out = client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=16,
                                         temperature=0.7, seed=11)
    assert out.choices[0].message.content == offline


def test_echo_loglikelihood(client, llm):
    prompt = "The quick brown fox"
    out = client.completions.create(model="demo", prompt=prompt, max_tokens=0, echo=True,
                                    logprobs=1, temperature=0)
    choice = out.choices[0]
    assert choice.text == prompt
    lp = choice.logprobs
    offline = llm.generate(prompt, SamplingParams(max_tokens=1, prompt_logprobs=1),
                           use_tqdm=False)[0]
    ids = offline.prompt_token_ids
    assert len(lp.tokens) == len(ids) and lp.token_logprobs[0] is None
    expected = [None] + [p[t].logprob for p, t in zip(offline.prompt_logprobs[1:], ids[1:])]
    assert lp.token_logprobs[1:] == pytest.approx(expected[1:])
    assert out.usage.completion_tokens == 0
    with_gen = client.completions.create(model="demo", prompt=prompt, max_tokens=2,
                                         echo=True, logprobs=1, temperature=0)
    assert with_gen.choices[0].text.startswith(prompt)
    assert len(with_gen.choices[0].logprobs.tokens) == len(ids) + 2


def test_stop_token_ids_and_min_tokens(client):
    base = client.completions.create(model="demo", prompt="Hello", max_tokens=12,
                                     temperature=0, logprobs=0)
    tokens = base.choices[0].logprobs.tokens
    stop_id = ord(tokens[5])
    first = next(i for i, t in enumerate(tokens) if ord(t) == stop_id)
    out = client.completions.create(model="demo", prompt="Hello", max_tokens=12,
                                    temperature=0, extra_body={"stop_token_ids": [stop_id]})
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].model_extra["stop_reason"] == stop_id
    assert out.choices[0].text == "".join(tokens[:first])
    later = client.completions.create(
        model="demo", prompt="Hello", max_tokens=12, temperature=0,
        extra_body={"stop_token_ids": [stop_id], "min_tokens": first + 1,
                    "include_stop_str_in_output": True})
    assert later.usage.completion_tokens > first + 1


def test_stream_several_prompts_and_samples(client):
    kwargs = dict(model="demo", prompt=["Hello", "abc"], max_tokens=6, temperature=0.9,
                  seed=3, n=2)
    whole = {c.index: c.text for c in client.completions.create(**kwargs).choices}
    streamed = {i: "" for i in range(4)}
    finished = set()
    for chunk in client.completions.create(**kwargs, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
            if choice.finish_reason:
                finished.add(choice.index)
    assert streamed == whole and finished == {0, 1, 2, 3}


def test_serving_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from pagedllm.engine import LLMEngine; "
            "from pagedllm.entrypoints.openai.app import build_app; "
            "build_app(LLMEngine('demo', num_threads=1, log_stats=False)); "
            "import pagedllm.entrypoints.openai.api_server; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
