"""Scheduler and KV-cache invariants of pagedllm._core.Engine under random workloads.

Random interleavings of add / abort / step on tiny caches and budgets. After every step: the
step's budgets hold, KV usage stays within the pool, every request is reported finished exactly
once (aborts with finish_reason "abort"), nothing is reported after it finished. At the end no
block or slot is leaked. The output of every request that ran to completion equals its output
when it runs alone in a large cache (greedy and seeded sampling), however often it was
preempted and recomputed.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models
from conftest import collect, core_params, make_engine

MAX_MODEL_LEN = 64

_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                            HealthCheck.data_too_large])


class Reference:
    """Outputs of requests run alone in an engine with a large cache (cached)."""

    def __init__(self, model_dir: str):
        self.engine = make_engine(model_dir, max_model_len=MAX_MODEL_LEN, num_kv_blocks=64, block_size=16)
        self.cache: dict = {}
        self.n = 0

    def tokens(self, prompt: list[int], kw: dict) -> list[int]:
        key = (tuple(prompt), tuple(sorted(kw.items())))
        if key not in self.cache:
            self.n += 1
            rid = f"ref{self.n}"
            self.engine.add_request(rid, prompt, core_params(**kw))
            results: dict = {}
            while self.engine.has_unfinished_requests():
                for d in self.engine.step():
                    collect(results, d)
            self.cache[key] = results[rid]["tokens"]
        return self.cache[key]


@pytest.fixture(scope="module")
def reference(llama_dir):
    return Reference(llama_dir)


def request_kwargs(rng: random.Random, max_tokens: int) -> dict:
    kind = rng.choice(["greedy", "seeded", "seeded_topk"])
    if kind == "greedy":
        return dict(max_tokens=max_tokens)
    kw = dict(max_tokens=max_tokens, temperature=1.0, seed=rng.randrange(1 << 30))
    if kind == "seeded_topk":
        kw.update(top_k=5, top_p=0.9)
    return kw


def make_ops(seed: int, num_requests: int, abort_rate: float) -> list[tuple]:
    """A random interleaving: every request is added once; between adds the engine steps 0-4
    times and an earlier request may be aborted (at any stage: waiting, mid-prefill, decoding,
    finished or already aborted)."""
    rng = random.Random(seed)
    ops: list[tuple] = []
    for i in range(num_requests):
        ops.append(("add", rng.randint(1, 60), rng.randint(1, 24), rng.randrange(1 << 30)))
        if rng.random() < 0.7:
            ops.append(("step", rng.randint(1, 4)))
        if rng.random() < abort_rate:
            ops.append(("abort", rng.randrange(i + 1)))
    return ops


@_SETTINGS
@given(
    block_size=st.sampled_from([1, 2, 4, 16]),
    num_kv_blocks_tokens=st.integers(40, 256),
    max_num_batched_tokens=st.integers(4, 48),
    max_num_seqs=st.integers(1, 6),
    chunked=st.booleans(),
    seed=st.integers(0, 1 << 31),
    num_requests=st.integers(2, 12),
    abort_rate=st.sampled_from([0.0, 0.15, 0.4]),
)
def test_random_workload_invariants(llama_dir, reference, block_size, num_kv_blocks_tokens, max_num_batched_tokens,
                                    max_num_seqs, chunked, seed, num_requests, abort_rate):
    ops = make_ops(seed, num_requests, abort_rate)
    if not chunked:
        max_num_batched_tokens = max(max_num_batched_tokens, MAX_MODEL_LEN)
    num_kv_blocks = max(1, num_kv_blocks_tokens // block_size)
    engine = make_engine(llama_dir, max_model_len=MAX_MODEL_LEN, num_kv_blocks=num_kv_blocks, block_size=block_size,
                         max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
                         enable_chunked_prefill=chunked)
    info = engine.model_info
    assert info.num_kv_blocks == num_kv_blocks and info.block_size == block_size
    assert info.max_num_batched_tokens == max_num_batched_tokens
    assert info.max_num_seqs <= max_num_seqs

    added: dict[str, tuple[list[int], dict]] = {}
    aborted: set[str] = set()
    finished: set[str] = set()
    results: dict = {}
    ids: list[str] = []

    def check_step(outputs) -> None:
        s = engine.stats()
        assert s.last_step_num_scheduled_tokens <= max_num_batched_tokens
        assert s.last_step_num_scheduled_seqs <= max_num_seqs
        assert s.num_running <= max_num_seqs
        assert s.num_kv_blocks_total == num_kv_blocks
        assert 0 <= s.num_kv_blocks_used <= num_kv_blocks
        assert s.num_kv_slots_used <= s.num_kv_blocks_used * block_size
        for d in outputs:
            assert d.request_id in added, f"output for unknown request {d.request_id}"
            assert d.request_id not in finished, f"{d.request_id} reported after it finished"
            assert len(d.new_token_ids) <= 1
            prompt, kw = added[d.request_id]
            assert d.num_prompt_tokens == len(prompt)
            before = len(results.get(d.request_id, {}).get("tokens", []))
            collect(results, d)
            assert d.num_output_tokens == before + len(d.new_token_ids)
            assert len(results[d.request_id]["tokens"]) <= kw["max_tokens"]
            if d.finished:
                finished.add(d.request_id)
                if d.request_id in aborted:
                    assert d.finish_reason == "abort"
                else:
                    assert d.finish_reason == "length"
            else:
                assert d.finish_reason is None

    def step() -> None:
        if engine.has_unfinished_requests():
            check_step(engine.step())

    for op in ops:
        if op[0] == "add":
            _, plen, max_tokens, seed = op
            rng = random.Random(seed)
            prompt = models.random_prompt(rng, plen, info.vocab_size)
            kw = request_kwargs(rng, max_tokens)
            rid = f"q{len(ids)}"
            total = min(plen + max_tokens, MAX_MODEL_LEN)
            blocks_needed = -(-total // block_size)
            if blocks_needed > num_kv_blocks:
                with pytest.raises(ValueError):
                    engine.add_request(rid, prompt, core_params(**kw))
                continue
            engine.add_request(rid, prompt, core_params(**kw))
            ids.append(rid)
            added[rid] = (prompt, kw)
        elif op[0] == "abort":
            assert engine.abort_request("nonexistent") is False
            if not ids:
                continue
            rid = ids[op[1] % len(ids)]
            ok = engine.abort_request(rid)
            if rid in finished or rid in aborted:
                assert ok is False, f"abort of finished {rid} returned True"
            else:
                # it may have finished in the latest step without us knowing yet? No: outputs
                # are consumed every step, so an unfinished id must be abortable.
                assert ok is True, f"abort of in-flight {rid} returned False"
                aborted.add(rid)
        else:
            for _ in range(op[1]):
                step()

    n = 0
    while engine.has_unfinished_requests():
        n += 1
        assert n < 5000, "engine never finished"
        check_step(engine.step())

    assert finished == set(added), f"never finished: {set(added) - finished}"
    for rid in added:
        assert results[rid]["finished_count"] == 1
    s = engine.stats()
    assert s.num_kv_blocks_used == 0, "KV blocks leaked"
    assert s.num_kv_slots_used == 0, "KV slots leaked"
    assert s.num_running == 0 and s.num_waiting == 0

    for rid, (prompt, kw) in added.items():
        if rid in aborted:
            continue
        expected = reference.tokens(prompt, kw)
        expected_len = min(kw["max_tokens"], MAX_MODEL_LEN - len(prompt))
        assert len(results[rid]["tokens"]) == expected_len
        assert results[rid]["tokens"] == expected, f"{rid} {kw} differs from running alone"


@pytest.mark.parametrize("block_size", [4, 16])
def test_preempted_requests_produce_identical_output(llama_dir, block_size):
    """The same batch of greedy and seeded-sampled requests in a cache that forces preemption
    and in a large cache gives identical tokens (and logprobs)."""
    rng = random.Random(7)
    reqs = []
    for i in range(8):
        prompt = models.random_prompt(rng, rng.randrange(1, 40), 256)
        kw = dict(max_tokens=20, logprobs=3)
        if i % 2:
            kw.update(temperature=0.9, seed=1000 + i, top_p=0.95)
        reqs.append((f"p{i}", prompt, kw))

    def run(num_kv_blocks: int):
        engine = make_engine(llama_dir, max_model_len=MAX_MODEL_LEN, num_kv_blocks=num_kv_blocks,
                             block_size=block_size, max_num_batched_tokens=32)
        for rid, prompt, kw in reqs:
            engine.add_request(rid, prompt, core_params(**kw))
        results: dict = {}
        while engine.has_unfinished_requests():
            for d in engine.step():
                collect(results, d)
            s = engine.stats()
            assert s.num_kv_blocks_used <= num_kv_blocks
        s = engine.stats()
        assert s.num_kv_blocks_used == 0 and s.num_kv_slots_used == 0
        return results, s.num_preemptions

    big, big_preempt = run(num_kv_blocks=4 * 64 // block_size * 8)
    small_blocks = -(-60 // block_size) + 1  # the largest request (<= 59 tokens) fits alone
    small, small_preempt = run(num_kv_blocks=small_blocks)
    assert big_preempt == 0
    assert small_preempt > 0, "the small cache did not force preemption"
    for rid, _, kw in reqs:
        assert small[rid]["tokens"] == big[rid]["tokens"], f"{rid} {kw}"
        assert len(small[rid]["tokens"]) == 20
        for a, b in zip(small[rid]["logprobs"], big[rid]["logprobs"]):
            assert a.token_id == b.token_id
            assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
            assert [t for t, _ in a.top] == [t for t, _ in b.top]


def test_abort_waiting_running_and_mid_prefill(llama_dir):
    """Aborts of a waiting request, a request mid chunked prefill and a decoding request free
    their blocks at once, are reported once with "abort", and leave the others' output intact."""
    engine = make_engine(llama_dir, max_model_len=MAX_MODEL_LEN, num_kv_blocks=16, block_size=4,
                         max_num_batched_tokens=8, max_num_seqs=2)
    rng = random.Random(3)
    prompts = {f"a{i}": models.random_prompt(rng, n, 256) for i, n in enumerate((5, 30, 6, 7))}
    for rid, p in prompts.items():
        engine.add_request(rid, p, core_params(max_tokens=8))
    results: dict = {}
    for d in engine.step():  # a0 prefilled (5 tokens) + first 3 of a1
        collect(results, d)
    assert engine.stats().num_running == 2 and engine.stats().num_waiting == 2
    used_before = engine.stats().num_kv_blocks_used
    assert engine.abort_request("a1") is True  # mid prefill
    assert engine.abort_request("a3") is True  # waiting
    assert engine.abort_request("a3") is False  # twice
    assert engine.stats().num_kv_blocks_used < used_before
    for d in engine.step():
        collect(results, d)
    assert results["a1"]["finish_reason"] == "abort" and results["a3"]["finish_reason"] == "abort"
    aborted_a2 = False
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
        a2 = results.get("a2")
        if not aborted_a2 and a2 and a2["tokens"] and a2["finished_count"] == 0:
            assert engine.abort_request("a2") is True  # decoding
            aborted_a2 = True
    assert aborted_a2
    assert results["a2"]["finish_reason"] == "abort" and results["a2"]["finished_count"] == 1
    assert len(results["a2"]["tokens"]) < 8
    assert results["a0"]["finish_reason"] == "length" and len(results["a0"]["tokens"]) == 8
    assert engine.stats().num_kv_blocks_used == 0 and engine.stats().num_kv_slots_used == 0

    alone = make_engine(llama_dir, max_model_len=MAX_MODEL_LEN)
    alone.add_request("a0", prompts["a0"], core_params(max_tokens=8))
    res: dict = {}
    while alone.has_unfinished_requests():
        for d in alone.step():
            collect(res, d)
    assert res["a0"]["tokens"] == results["a0"]["tokens"]


def test_budget_and_chunking_shape(llama_dir):
    """A 40-token prompt with a 16-token budget is prefilled in chunks 16, 16, 8 (then decodes);
    a decode joins a long prefill in the same step without exceeding the budget."""
    engine = make_engine(llama_dir, max_model_len=MAX_MODEL_LEN, max_num_batched_tokens=16, block_size=4)
    rng = random.Random(5)
    engine.add_request("long", models.random_prompt(rng, 40, 256), core_params(max_tokens=3))
    scheduled = []
    results: dict = {}
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
        scheduled.append(engine.stats().last_step_num_scheduled_tokens)
        if len(scheduled) == 1:
            engine.add_request("short", models.random_prompt(rng, 3, 256), core_params(max_tokens=6))
    assert scheduled[:3] == [16, 16, 8 + 3], scheduled
    assert all(n <= 16 for n in scheduled)
    assert results["long"]["tokens"] and len(results["short"]["tokens"]) == 6
    s = engine.stats()
    assert s.num_prompt_tokens_computed == 43
    assert s.num_generation_tokens == 9
