"""best_of: SamplingParams(n, best_of) generates best_of samples and returns the n with the
highest cumulative logprob, best first (vLLM's semantics), offline and through the server."""

from __future__ import annotations

import httpx
import pytest

from conftest import make_llm, token_prompts
from server_utils import shared_server

from pagedllm import SamplingParams

PROMPTS = [[1, 7, 9, 200, 31], [5] * 20, [3]]


def test_best_of_returns_the_n_most_likely_samples(llama_dir):
    llm = make_llm(llama_dir, block_size=4)
    every = llm.generate(token_prompts(PROMPTS), SamplingParams(n=5, seed=11, max_tokens=12, logprobs=0,
                                                                temperature=1.5), use_tqdm=False)
    for logprobs in (None, 2):
        best = llm.generate(token_prompts(PROMPTS),
                            SamplingParams(n=2, best_of=5, seed=11, max_tokens=12, temperature=1.5,
                                           logprobs=logprobs), use_tqdm=False)
        for ref, out in zip(every, best):
            ranked = sorted(ref.outputs, key=lambda o: -o.cumulative_logprob)[:2]
            assert [o.token_ids for o in out.outputs] == [o.token_ids for o in ranked]
            assert [o.index for o in out.outputs] == [0, 1]
            assert out.outputs[0].cumulative_logprob >= out.outputs[1].cumulative_logprob
            for o, r in zip(out.outputs, ranked):
                assert abs(o.cumulative_logprob - r.cumulative_logprob) < 1e-4
                assert (o.logprobs is None) == (logprobs is None)
                assert o.text == r.text
    assert llm.llm_engine.get_stats()["num_kv_blocks_used"] == 0


def test_best_of_streams_only_the_final_output(llama_dir):
    from pagedllm import RequestOutputKind

    llm = make_llm(llama_dir)
    engine = llm.llm_engine
    engine.add_request("r", {"prompt_token_ids": PROMPTS[0]},
                       SamplingParams(n=1, best_of=3, seed=2, max_tokens=6, output_kind=RequestOutputKind.DELTA))
    outputs = []
    while engine.has_unfinished_requests():
        outputs += engine.step()
    assert len(outputs) == 1 and outputs[0].finished and len(outputs[0].outputs) == 1
    with pytest.raises(ValueError, match="best_of must be greater than or equal to n"):
        SamplingParams(n=3, best_of=2)


def test_server_best_of():
    server = shared_server()
    body = {"model": "demo", "prompt": "Hello", "max_tokens": 8, "n": 2, "best_of": 4, "seed": 3,
            "temperature": 1.0, "logprobs": 1}
    r = httpx.post(f"{server.base_url}/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    sums = [sum(c["logprobs"]["token_logprobs"]) for c in choices]
    assert sums[0] >= sums[1] - 1e-4
    bad = httpx.post(f"{server.base_url}/completions", json=dict(body, best_of=1), timeout=60)
    assert bad.status_code == 400 and "best_of" in bad.text
