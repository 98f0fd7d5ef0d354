"""Automatic prefix caching end to end: outputs identical with caching on and off (greedy and
seeded sampling, chunked prefill, preemption, eviction under pressure), equal to Hugging Face
greedy decoding when the prefix is served from the cache, exact counts of the prompt tokens a
shared-system-prompt workload computes, reset_prefix_cache, prompt_logprobs, and the switches.
"""

from __future__ import annotations

import argparse
import random

import pytest

import models
from conftest import collect, core_params, llm_engine, make_engine, make_llm, vocab_size

FP32_ATOL, FP32_RTOL, FP32_TIE = 1e-4, 1e-5, 2e-3


def family_prompts(seed: int, num_requests: int, prefix_lens=(0, 21, 37, 64), vocab: int = 256,
                   suffix_range=(1, 20)) -> list[list[int]]:
    """Requests drawn from a few shared prefixes (random lengths around block boundaries) with
    random suffixes; some prompts repeat a whole earlier prompt."""
    rng = random.Random(seed)
    prefixes = [models.random_prompt(rng, n, vocab) for n in prefix_lens]
    prompts: list[list[int]] = []
    for _ in range(num_requests):
        if prompts and rng.random() < 0.15:
            prompts.append(list(rng.choice(prompts)))
            continue
        suffix = models.random_prompt(rng, rng.randint(*suffix_range), vocab)
        prompts.append(rng.choice(prefixes) + suffix)
    return prompts


def run_waves(engine, prompts: list[list[int]], params: list[dict], waves) -> dict:
    """Adds the requests wave by wave ((steps to run first, request indices)), then runs the
    engine dry; the collected results by request id."""
    results: dict = {}
    for nsteps, wave in waves:
        for _ in range(nsteps):
            for d in engine.step():
                collect(results, d)
        for i in wave:
            engine.add_request(f"r{i}", prompts[i], core_params(**params[i]))
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
    return results


def waves_for(n: int) -> list[tuple[int, list[int]]]:
    return [(0, [0]), (3, [1, 2]), (2, list(range(3, n // 2))), (4, list(range(n // 2, n - 2))),
            (6, [n - 2, n - 1])]


def assert_same_results(on: dict, off: dict, what: str) -> None:
    assert sorted(on) == sorted(off)
    for rid in off:
        a, b = on[rid], off[rid]
        assert a["finished_count"] == 1 and b["finished_count"] == 1
        assert a["tokens"] == b["tokens"], f"{what} {rid}: tokens differ with prefix caching"
        assert a["finish_reason"] == b["finish_reason"]
        for i, (x, y) in enumerate(zip(a["logprobs"], b["logprobs"])):
            assert x.token_id == y.token_id
            assert abs(x.logprob - y.logprob) <= FP32_ATOL + FP32_RTOL * abs(y.logprob), f"{what} {rid} output {i}"
        assert sorted(a["prompt_logprobs"]) == sorted(b["prompt_logprobs"])
        for pos, x in a["prompt_logprobs"].items():
            y = b["prompt_logprobs"][pos]
            assert abs(x.logprob - y.logprob) <= FP32_ATOL + FP32_RTOL * abs(y.logprob), f"{what} {rid} prompt {pos}"


CONFIGS = {
    "whole": dict(enable_chunked_prefill=False, block_size=16),
    "chunked16": dict(max_num_batched_tokens=16, block_size=16),
    "chunked_bs4": dict(max_num_batched_tokens=24, block_size=4),
    # caches too small for the workload: preemption, and eviction of cached blocks
    "preempt": dict(max_num_batched_tokens=32, block_size=8, num_kv_blocks=14),
    "preempt_bs4": dict(max_num_batched_tokens=20, block_size=4, num_kv_blocks=30),
}


@pytest.mark.parametrize("kind", ["greedy", "seeded"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_outputs_identical_with_caching_on_and_off(llama_dir, config, kind):
    n = 14
    prompts = family_prompts(seed=11, num_requests=n)
    rng = random.Random(5)
    params = []
    for i in range(n):
        kw = dict(max_tokens=rng.randint(1, 12), logprobs=1)
        if kind == "seeded":
            kw.update(temperature=1.0, top_k=20, seed=rng.randrange(1 << 30))
        if i == 4:
            kw.update(prompt_logprobs=1)
        params.append(kw)
    runs = {}
    for caching in (True, False):
        engine = make_engine(llama_dir, max_model_len=128, enable_prefix_caching=caching, **CONFIGS[config])
        runs[caching] = run_waves(engine, prompts, params, waves_for(n))
        stats = engine.stats()
        assert stats.num_kv_blocks_used == 0 and stats.num_running == 0
        if caching:
            assert stats.num_prefix_cache_hits > 0, "the workload never hit the cache"
            assert stats.num_prefix_cache_hits <= stats.num_prefix_cache_queries
        else:
            assert stats.num_prefix_cache_queries == 0 and stats.num_cached_blocks == 0
        if config.startswith("preempt"):
            assert stats.num_preemptions > 0, "the small KV cache did not force any preemption"
        runs[(caching, "computed")] = stats.num_prompt_tokens_computed
    assert runs[(True, "computed")] < runs[(False, "computed")]
    assert_same_results(runs[True], runs[False], f"{config}/{kind}")


@pytest.mark.parametrize("name", ["llama", "qwen2", "qwen3"])
def test_cached_prefix_outputs_match_hf(get_model, name):
    """Requests whose prompts share a cached prefix (and one that repeats a whole prompt)
    produce Hugging Face's greedy tokens, with logprobs along the trajectory."""
    from pagedllm import SamplingParams

    model_dir = get_model(name)
    rng = random.Random(f"hf/{name}")
    vocab = vocab_size(name)
    prefix = models.random_prompt(rng, 40, vocab)
    first = prefix + models.random_prompt(rng, 9, vocab)
    rest = [prefix + models.random_prompt(rng, k, vocab) for k in (1, 7, 30)] + [list(first), prefix[:33]]
    llm = make_llm(model_dir, "float32", block_size=8)
    params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=16, logprobs=0)
    llm.generate([{"prompt_token_ids": first}], params, use_tqdm=False)
    outs = llm.generate([{"prompt_token_ids": p} for p in rest], params, use_tqdm=False)
    want_cached = [40, 40, 40, 48, 32]
    assert [o.num_cached_tokens for o in outs] == want_cached
    for out, prompt in zip(outs, rest):
        ref_tokens, margins = models.hf_greedy(models.load_hf(model_dir), prompt, 16)
        gen = out.outputs[0]
        models.assert_greedy_equal(list(gen.token_ids), ref_tokens, margins, FP32_TIE, f"{name} len {len(prompt)}")
        ref = models.hf_logprobs(models.load_hf(model_dir), prompt + list(gen.token_ids))
        for i, (tok, lps) in enumerate(zip(gen.token_ids, gen.logprobs)):
            want = float(ref[len(prompt) - 1 + i][tok])
            assert abs(lps[tok].logprob - want) <= FP32_ATOL + FP32_RTOL * abs(want), f"{name} output {i}"


def test_shared_system_prompt_computes_only_unshared_tokens(llama_dir):
    """8 requests share a 64-token system prompt (block_size 16): the first computes its whole
    prompt, the others only their suffix; a request that is exactly the system prompt
    recomputes its last block (the last prompt token needs logits)."""
    from pagedllm import SamplingParams

    rng = random.Random(8)
    system = models.random_prompt(rng, 64, 256)
    suffix_lens = [16, 5, 16, 30, 1, 16, 9, 16]
    prompts = [system + models.random_prompt(rng, k, 256) for k in suffix_lens]
    llm = make_llm(llama_dir, "float32", block_size=16)
    params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=4)
    first = llm.generate([{"prompt_token_ids": prompts[0]}], params, use_tqdm=False)
    assert first[0].num_cached_tokens == 0
    stats0 = llm.llm_engine.get_stats()
    assert stats0["num_prompt_tokens_computed"] == 80
    assert stats0["num_cached_blocks"] == 5  # 4 prompt blocks + the block of prompt + outputs
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts[1:]], params, use_tqdm=False)
    assert [o.num_cached_tokens for o in outs] == [64] * 7
    stats = llm.llm_engine.get_stats()
    assert stats["num_prompt_tokens_computed"] - 80 == sum(suffix_lens[1:])
    assert stats["num_prefix_cache_queries"] == sum(len(p) for p in prompts)
    assert stats["num_prefix_cache_hits"] == 7 * 64
    assert stats["num_kv_blocks_used"] == 0

    exact = llm.generate([{"prompt_token_ids": list(system)}], params, use_tqdm=False)
    assert exact[0].num_cached_tokens == 48
    after = llm.llm_engine.get_stats()
    assert after["num_prompt_tokens_computed"] - stats["num_prompt_tokens_computed"] == 16

    off = make_llm(llama_dir, "float32", block_size=16, enable_prefix_caching=False)
    off.generate([{"prompt_token_ids": prompts[0]}], params, use_tqdm=False)
    outs_off = off.generate([{"prompt_token_ids": p} for p in prompts[1:]], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outs_off] == [o.outputs[0].token_ids for o in outs]
    assert all(o.num_cached_tokens == 0 for o in outs_off)
    off_stats = off.llm_engine.get_stats()
    assert off_stats["num_prompt_tokens_computed"] == sum(len(p) for p in prompts)
    assert off_stats["num_prefix_cache_queries"] == 0 and off_stats["num_cached_blocks"] == 0


def test_eviction_under_pressure_keeps_outputs_correct(llama_dir):
    """A cache of 10 blocks of 8 tokens for 24 requests from 3 prefixes: cached blocks are
    evicted (LRU) and reused while others are in use; every output equals HF's greedy one."""
    rng = random.Random(21)
    prefixes = [models.random_prompt(rng, n, 256) for n in (24, 33, 16)]
    prompts = [rng.choice(prefixes) + models.random_prompt(rng, rng.randint(1, 12), 256) for _ in range(24)]
    params = [dict(max_tokens=rng.randint(2, 10)) for _ in prompts]
    engine = make_engine(llama_dir, max_model_len=80, block_size=8, num_kv_blocks=10, max_num_batched_tokens=24)
    waves = [(i % 3, [i]) for i in range(len(prompts))]
    results = run_waves(engine, prompts, params, waves)
    stats = engine.stats()
    assert stats.num_preemptions > 0
    assert stats.num_prefix_cache_hits > 0
    assert stats.num_kv_blocks_used == 0 and stats.num_cached_blocks <= 10
    hf = models.load_hf(llama_dir)
    for i, prompt in enumerate(prompts):
        ref_tokens, margins = models.hf_greedy(hf, prompt, params[i]["max_tokens"])
        models.assert_greedy_equal(results[f"r{i}"]["tokens"], ref_tokens, margins, FP32_TIE, f"r{i}")


def test_reset_prefix_cache(llama_dir):
    from pagedllm import SamplingParams

    llm = make_llm(llama_dir, "float32", block_size=8)
    prompt = models.random_prompt(random.Random(3), 30, 256)
    params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=3)
    a = llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0]
    assert llm.llm_engine.get_stats()["num_cached_blocks"] == 4
    b = llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0]
    assert b.num_cached_tokens == 24 and b.outputs[0].token_ids == a.outputs[0].token_ids
    assert llm.reset_prefix_cache() is True
    assert llm.llm_engine.get_stats()["num_cached_blocks"] == 0
    c = llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0]
    assert c.num_cached_tokens == 0 and c.outputs[0].token_ids == a.outputs[0].token_ids

    # While a request holds blocks, nothing is dropped.
    engine = llm_engine(llm)
    engine.add_request("busy", prompt, core_params(max_tokens=5))
    engine.step()
    assert engine.reset_prefix_cache() is False
    assert llm.reset_prefix_cache() is False
    engine.abort_request("busy")
    engine.step()
    assert engine.reset_prefix_cache() is True


def test_prompt_logprobs_are_computed_not_cached(llama_dir):
    """A request asking for prompt logprobs skips the lookup (every position needs logits),
    so its prompt logprobs equal those of a cold engine; it still fills the cache."""
    from pagedllm import SamplingParams

    prompt = models.random_prompt(random.Random(4), 37, 256)
    lp_params = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=2, prompt_logprobs=3)
    cold = make_llm(llama_dir, "float32", block_size=8, enable_prefix_caching=False)
    want = cold.generate([{"prompt_token_ids": prompt}], lp_params, use_tqdm=False)[0]
    llm = make_llm(llama_dir, "float32", block_size=8)
    llm.generate([{"prompt_token_ids": prompt}], SamplingParams(max_tokens=1), use_tqdm=False)
    got = llm.generate([{"prompt_token_ids": prompt}], lp_params, use_tqdm=False)[0]
    assert got.num_cached_tokens == 0
    assert len(got.prompt_logprobs) == len(prompt) and got.prompt_logprobs[0] is None
    for pos in range(1, len(prompt)):
        for tok, lp in want.prompt_logprobs[pos].items():
            assert abs(got.prompt_logprobs[pos][tok].logprob - lp.logprob) <= FP32_ATOL + FP32_RTOL * abs(lp.logprob)
    assert got.outputs[0].token_ids == want.outputs[0].token_ids
    stats = llm.llm_engine.get_stats()
    assert stats["num_prefix_cache_queries"] == len(prompt)  # the prompt_logprobs request is not a query
    assert stats["num_prompt_tokens_computed"] == 2 * len(prompt)
    hit = llm.generate([{"prompt_token_ids": prompt}], SamplingParams(max_tokens=1), use_tqdm=False)[0]
    assert hit.num_cached_tokens == 32


def test_switches(llama_dir):
    from pagedllm import EngineArgs

    parser = argparse.ArgumentParser()
    EngineArgs.add_cli_args(parser, default_model="demo")
    assert EngineArgs.from_cli_args(parser.parse_args([])).enable_prefix_caching is True
    args = EngineArgs.from_cli_args(parser.parse_args(["--no-enable-prefix-caching"]))
    assert args.enable_prefix_caching is False
    assert args.to_core_config("/nowhere").enable_prefix_caching is False
    assert EngineArgs.from_cli_args(parser.parse_args(["--enable-prefix-caching"])).enable_prefix_caching is True

    llm = make_llm(llama_dir, "float32", enable_prefix_caching=False)
    assert llm_engine(llm).stats().num_prefix_cache_queries == 0
    stats = llm.llm_engine.get_stats()
    for key in ("num_prefix_cache_queries", "num_prefix_cache_hits", "num_cached_blocks"):
        assert stats[key] == 0
