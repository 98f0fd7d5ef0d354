"""Memory sharing: the engine's KV waste and sharing statistics against references computed
from sequence lengths."""

from __future__ import annotations

import random

import pytest

import models
from conftest import collect, core_params, make_engine

BLOCK = 16


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def reference_usage(lengths: list[int], shared_tokens: int = 0) -> dict:
    """Slots and blocks of sequences holding `lengths` tokens of KV each, the first
    shared_tokens (whole blocks) of every sequence held once."""
    assert shared_tokens % BLOCK == 0
    held = sum(cdiv(n, BLOCK) for n in lengths)
    filled = sum(lengths)
    if lengths and shared_tokens:
        held -= (len(lengths) - 1) * shared_tokens // BLOCK
        filled -= (len(lengths) - 1) * shared_tokens
    refs = sum(cdiv(n, BLOCK) for n in lengths)
    allocated = held * BLOCK
    return dict(num_kv_slots_allocated=allocated, num_kv_slots_filled=filled,
                kv_internal_waste=0.0 if allocated == 0 else (allocated - filled) / allocated,
                num_kv_blocks_saved_by_sharing=refs - held)


def assert_usage(stats, ref: dict) -> None:
    assert stats.num_kv_slots_allocated == ref["num_kv_slots_allocated"]
    assert stats.num_kv_slots_filled == ref["num_kv_slots_filled"]
    assert stats.num_kv_blocks_saved_by_sharing == ref["num_kv_blocks_saved_by_sharing"]
    assert abs(stats.kv_internal_waste - ref["kv_internal_waste"]) < 1e-12
    assert stats.num_kv_slots_allocated == stats.num_kv_blocks_used * BLOCK


def test_internal_waste_mixed_workload(llama_dir):
    """Mixed prompt and output lengths at block size 16: after every step each running request
    holds prompt + outputs - 1 tokens of KV; the engine's waste equals the reference."""
    rng = random.Random(7)
    engine = make_engine(llama_dir, max_model_len=256, block_size=BLOCK, num_kv_blocks=512,
                         max_num_batched_tokens=2048, enable_prefix_caching=False)
    requests = {}
    for i in range(16):
        prompt = models.random_prompt(rng, rng.randint(1, 120), 256)
        requests[f"r{i}"] = len(prompt)
        engine.add_request(f"r{i}", prompt, core_params(max_tokens=rng.randint(1, 60)))
    results: dict = {}
    wastes = []
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
        stats = engine.stats()
        assert stats.num_waiting == 0
        lengths = [p + len(results[rid]["tokens"]) - 1 for rid, p in requests.items()
                   if results[rid]["finished_count"] == 0]
        assert stats.num_running == len(lengths)
        assert_usage(stats, reference_usage(lengths))
        wastes.append(stats.kv_internal_waste)
    assert max(wastes) > 0.0
    assert_usage(engine.stats(), reference_usage([]))


def test_shared_prefix_savings(llama_dir):
    """Requests that hit a 64-token cached prefix hold its 4 blocks once."""
    rng = random.Random(3)
    engine = make_engine(llama_dir, max_model_len=256, block_size=BLOCK, num_kv_blocks=256,
                         enable_prefix_caching=True)
    prefix = models.random_prompt(rng, 4 * BLOCK, 256)
    prompts = {f"s{i}": prefix + models.random_prompt(rng, 5 + 7 * i, 256) for i in range(3)}
    results: dict = {}
    for rid, prompt in prompts.items():
        engine.add_request(rid, prompt, core_params(max_tokens=12))
        for d in engine.step():
            collect(results, d)
    for _ in range(3):
        for d in engine.step():
            collect(results, d)
        lengths = [len(prompts[rid]) + len(results[rid]["tokens"]) - 1 for rid in prompts]
        assert_usage(engine.stats(), reference_usage(lengths, shared_tokens=4 * BLOCK))
    assert engine.stats().num_kv_blocks_saved_by_sharing == 8
    while engine.has_unfinished_requests():
        engine.step()
    assert_usage(engine.stats(), reference_usage([]))


def test_get_stats_reports_waste(llama_dir):
    from pagedllm.engine import LLMEngine

    engine = LLMEngine(llama_dir, num_threads=2, log_stats=False, max_model_len=128, block_size=BLOCK)
    stats = engine.get_stats()
    assert stats["kv_internal_waste"] == 0.0 and isinstance(stats["kv_internal_waste"], float)
    assert stats["num_kv_slots_allocated"] == 0 and stats["num_kv_blocks_saved_by_sharing"] == 0
    engine.add_request("a", {"prompt_token_ids": list(range(1, 21))})
    engine.step()
    stats = engine.get_stats()
    assert stats["num_kv_slots_allocated"] == 32 and stats["num_kv_slots_filled"] == 20
    assert abs(stats["kv_internal_waste"] - 12 / 32) < 1e-12


# ---- parallel sampling on shared prompt blocks ----

PARALLEL_CONFIGS = {
    "roomy": dict(num_kv_blocks=128),
    "chunked": dict(num_kv_blocks=128, max_num_batched_tokens=16),
    "preempting": dict(num_kv_blocks=14, max_num_batched_tokens=32),
}


def parallel_workload(seed: int) -> list[tuple[list[int], int, dict]]:
    """(prompt, n, params) per request: groups of 2-4 samples and single requests, greedy,
    seeded and unseeded sampling, prompts across block boundaries."""
    rng = random.Random(seed)
    kinds = [dict(), dict(temperature=1.0, seed=1234), dict(temperature=1.0, top_k=5),
             dict(temperature=0.8, seed=99, top_p=0.9)]
    work = []
    for i in range(7):
        prompt = models.random_prompt(rng, rng.choice([5, 16, 17, 31, 40, 47]), 256)
        n = rng.choice([1, 2, 3, 4])
        work.append((prompt, n, dict(max_tokens=rng.randint(4, 14), **kinds[i % len(kinds)])))
    return work


def run_parallel(engine, work, grouped: bool) -> tuple[dict, int]:
    """Adds every request (n samples with seeds seed + i, as vLLM derives them) and runs the
    engine dry; (results by id, most blocks saved by sharing in any step)."""
    for r, (prompt, n, kw) in enumerate(work):
        ids = [f"q{r}#{i}" for i in range(n)]
        params = [core_params(**dict(kw, seed=kw["seed"] + i) if "seed" in kw else kw) for i in range(n)]
        if grouped:
            engine.add_parallel_requests(ids, prompt, params)
        else:
            for rid, p in zip(ids, params):
                engine.add_request(rid, prompt, p)
    results: dict = {}
    saved = 0
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
        saved = max(saved, engine.stats().num_kv_blocks_saved_by_sharing)
    stats = engine.stats()
    assert stats.num_kv_blocks_used == 0 and stats.num_kv_slots_used == 0
    return results, saved


@pytest.mark.parametrize("caching", [False, True])
@pytest.mark.parametrize("config", sorted(PARALLEL_CONFIGS))
def test_parallel_samples_equal_separate_requests(llama_dir, config, caching):
    work = parallel_workload(11)
    runs = {}
    for grouped in (True, False):
        engine = make_engine(llama_dir, max_model_len=128, block_size=8, seed=5,
                             enable_prefix_caching=caching, **PARALLEL_CONFIGS[config])
        runs[grouped] = run_parallel(engine, work, grouped) + (engine.stats(),)
    (shared, saved, stats_on), (separate, _, stats_off) = runs[True], runs[False]
    assert sorted(shared) == sorted(separate)
    for rid in separate:
        assert shared[rid]["tokens"] == separate[rid]["tokens"], rid
        assert shared[rid]["finish_reason"] == separate[rid]["finish_reason"]
    assert saved > 0
    if config != "preempting":
        assert stats_on.num_prompt_tokens_computed < stats_off.num_prompt_tokens_computed
    if config == "preempting":
        assert stats_on.num_preemptions > 0


def test_parallel_samples_compute_the_prompt_once(llama_dir):
    """4 samples of a 40-token prompt at block size 8: the prompt is computed once, each
    other sample recomputes only the last partial block (40 - 1 -> 32 shared tokens)."""
    engine = make_engine(llama_dir, max_model_len=128, block_size=8, num_kv_blocks=64)
    prompt = models.random_prompt(random.Random(2), 40, 256)
    params = [core_params(max_tokens=3, temperature=1.0, seed=i) for i in range(4)]
    engine.add_parallel_requests([f"s{i}" for i in range(4)], prompt, params)
    engine.step()
    assert engine.stats().num_running == 1 and engine.stats().num_waiting == 3
    engine.step()
    stats = engine.stats()
    assert stats.num_running == 4
    assert stats.num_prompt_tokens_computed == 40 + 3 * 8
    assert stats.num_kv_blocks_saved_by_sharing == 3 * 4
    while engine.has_unfinished_requests():
        engine.step()


def test_add_parallel_requests_is_all_or_nothing(llama_dir):
    engine = make_engine(llama_dir, max_model_len=64)
    engine.add_request("taken", [1, 2, 3], core_params())
    for ids, params in ((["a", "taken"], [core_params()] * 2), (["a", "a"], [core_params()] * 2),
                        (["a", "b"], [core_params()]), (["a", "b"], [core_params(), core_params(max_tokens=-1)])):
        with pytest.raises(ValueError):
            engine.add_parallel_requests(ids, [1, 2, 3], params)
    assert engine.stats().num_waiting == 1
    engine.add_parallel_requests(["a", "b"], [1, 2, 3], [core_params()] * 2)
    assert engine.stats().num_waiting == 3


def test_llm_n_samples_equal_separate_seeds(llama_dir):
    from pagedllm import SamplingParams

    from conftest import make_llm

    llm = make_llm(llama_dir, block_size=8, max_num_batched_tokens=16)
    prompt = {"prompt_token_ids": models.random_prompt(random.Random(4), 37, 256)}
    together = llm.generate(prompt, SamplingParams(n=4, seed=21, temperature=1.0, max_tokens=8,
                                                   ignore_eos=True), use_tqdm=False)[0]
    for i, sample in enumerate(together.outputs):
        alone = llm.generate(prompt, SamplingParams(seed=21 + i, temperature=1.0, max_tokens=8,
                                                    ignore_eos=True), use_tqdm=False)[0]
        assert sample.token_ids == alone.outputs[0].token_ids
