#!/usr/bin/env python3
"""Prefix caching: what a shared prefix saves, and what caching costs when nothing is shared.

Runs the C++ engine's step loop directly (pagedllm._core.Engine, token ids in, no tokenizer) on
the random-weight Llama of benchmarks/throughput.py, with enable_prefix_caching on and off:

  shared (issue 4 (b)): --num-prefixes prefixes of --prefix-len tokens, each followed by a
    unique --suffix-len-token suffix, --requests-per-prefix requests per prefix submitted at
    once in round-robin order (p0, p1, ..., p9, p0, ...). Reports the prompt tokens the engine
    computed, throughput, and time to first token (TTFT: from submission to the step that
    returns the request's first token, timestamped in the step loop). Also the TTFT of one
    request alone whose prefix is cached (warm) against the same request computed cold.
  unique (issue 4 (c)): --unique-requests all-distinct prompts (0% hit rate); on and off runs
    alternate back to back (--repeat each); medians, best runs and the median of the
    per-pair ratios are compared (the machine may be shared: pairs and minima resist noise).

Every run starts from an empty prefix cache (reset_prefix_cache()). Outputs are checked to be
identical with caching on and off.

  python benchmarks/prefix_caching.py                       # both workloads
  python benchmarks/prefix_caching.py --workload shared --requests-per-prefix 4
  python benchmarks/prefix_caching.py --workload unique --repeat 7
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import throughput  # noqa: E402  (the checkpoint builder)


def make_engine(model_dir: str, caching: bool, args):
    from pagedllm import _core

    cfg = _core.EngineConfig()
    cfg.model = model_dir
    cfg.dtype = args.dtype
    cfg.num_threads = args.num_threads
    cfg.max_model_len = args.max_model_len
    cfg.block_size = args.block_size
    cfg.enable_prefix_caching = caching
    cfg.log_stats = False
    return _core.Engine(cfg)


def core_params(max_tokens: int):
    from pagedllm import _core

    p = _core.SamplingParams()
    p.temperature = 0.0
    p.ignore_eos = True
    p.max_tokens = max_tokens
    return p


def run(engine, prompts: list[list[int]], output_len: int, tag: str) -> dict:
    """Submits all prompts at once and steps until done; times, TTFTs and token counts."""
    assert engine.reset_prefix_cache(), "reset_prefix_cache failed: requests still hold blocks"
    before = engine.stats()
    params = core_params(output_len)
    tokens: dict[str, list[int]] = {}
    ttft: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(f"{tag}-{i}", prompt, params)
    while engine.has_unfinished_requests():
        outs = engine.step()
        now = time.perf_counter()
        for o in outs:
            if o.new_token_ids:
                ttft.setdefault(o.request_id, now - t0)
                tokens.setdefault(o.request_id, []).extend(o.new_token_ids)
    elapsed = time.perf_counter() - t0
    after = engine.stats()
    outputs = [tokens[f"{tag}-{i}"] for i in range(len(prompts))]
    assert all(len(t) == output_len for t in outputs)
    ttfts = sorted(ttft.values())
    return {
        "elapsed_s": elapsed,
        "computed": after.num_prompt_tokens_computed - before.num_prompt_tokens_computed,
        "queries": after.num_prefix_cache_queries - before.num_prefix_cache_queries,
        "hits": after.num_prefix_cache_hits - before.num_prefix_cache_hits,
        "ttft_mean_s": statistics.mean(ttfts),
        "ttft_median_s": statistics.median(ttfts),
        "ttft_p90_s": ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))],
        "outputs": outputs,
    }


def single_ttft(engine, prompt: list[int], tag: str) -> float:
    """TTFT of one request alone (the engine is idle when it arrives)."""
    t0 = time.perf_counter()
    engine.add_request(tag, prompt, core_params(1))
    first = None
    while engine.has_unfinished_requests():
        for o in engine.step():
            if o.new_token_ids and first is None:
                first = time.perf_counter() - t0
    return first


def shared_workload(args, vocab: int):
    rng = random.Random(args.seed)
    prefixes = [[rng.randrange(3, vocab) for _ in range(args.prefix_len)] for _ in range(args.num_prefixes)]
    prompts = []
    for _ in range(args.requests_per_prefix):
        for prefix in prefixes:
            prompts.append(prefix + [rng.randrange(3, vocab) for _ in range(args.suffix_len)])
    probes = [prefix + [rng.randrange(3, vocab) for _ in range(args.suffix_len)] for prefix in prefixes]
    return prompts, probes


def bench_shared(args, vocab: int, engines: dict) -> None:
    prompts, probes = shared_workload(args, vocab)
    n_in = sum(len(p) for p in prompts)
    n_out = len(prompts) * args.output_len
    print(f"\n(b) shared prefixes: {args.num_prefixes} prefixes x {args.prefix_len} tokens, "
          f"{args.suffix_len}-token suffixes, {args.requests_per_prefix} requests per prefix "
          f"({len(prompts)} requests, {n_in} prompt tokens, {args.output_len} output tokens each), "
          f"best of {args.repeat}", flush=True)
    best: dict = {}
    for rep in range(args.repeat):
        for caching in ((True, False) if rep % 2 == 0 else (False, True)):
            r = run(engines[caching], prompts, args.output_len, f"b{rep}{int(caching)}")
            if caching not in best or r["elapsed_s"] < best[caching]["elapsed_s"]:
                best[caching] = r
    assert best[True]["outputs"] == best[False]["outputs"], "outputs differ with prefix caching"
    single: dict = {}
    for caching in (True, False):
        engine = engines[caching]
        assert engine.reset_prefix_cache()
        times = []
        for i, probe in enumerate(probes):
            single_ttft(engine, probe[:args.prefix_len] + [3] * args.suffix_len, f"warm{i}")  # fills the cache
            times.append(single_ttft(engine, probe, f"probe{i}"))
        single[caching] = statistics.median(times)
    header = (f"{'caching':<9}{'computed prompt tok':>20}{'hit rate':>10}{'time s':>9}{'req/s':>8}"
              f"{'total tok/s':>13}{'TTFT mean s':>13}{'TTFT med s':>12}{'TTFT p90 s':>12}{'alone TTFT ms':>15}")
    print(header)
    print("-" * len(header))
    for caching in (True, False):
        r = best[caching]
        hit_rate = r["hits"] / r["queries"] if r["queries"] else 0.0
        print(f"{'on' if caching else 'off':<9}{r['computed']:>20}{hit_rate:>10.1%}{r['elapsed_s']:>9.2f}"
              f"{len(prompts) / r['elapsed_s']:>8.2f}{(n_in + n_out) / r['elapsed_s']:>13.1f}"
              f"{r['ttft_mean_s']:>13.2f}{r['ttft_median_s']:>12.2f}{r['ttft_p90_s']:>12.2f}"
              f"{single[caching] * 1e3:>15.1f}")
    on, off = best[True], best[False]
    print(f"computed prompt tokens off/on: {off['computed'] / on['computed']:.2f}x; "
          f"throughput on/off: {off['elapsed_s'] / on['elapsed_s']:.2f}x; "
          f"mean TTFT off/on: {off['ttft_mean_s'] / on['ttft_mean_s']:.2f}x; "
          f"TTFT of one request alone off/on: {single[False] / single[True]:.2f}x")


def bench_unique(args, vocab: int, engines: dict) -> None:
    rng = random.Random(args.seed + 1)
    prompts = [[rng.randrange(3, vocab) for _ in range(args.unique_prompt_len)] for _ in range(args.unique_requests)]
    n_tok = sum(len(p) for p in prompts) + len(prompts) * args.unique_output_len
    print(f"\n(c) 0% hit rate: {len(prompts)} unique prompts x {args.unique_prompt_len} tokens, "
          f"{args.unique_output_len} output tokens each; {args.repeat} interleaved runs per setting", flush=True)
    times: dict = {True: [], False: []}
    outputs: dict = {}
    for rep in range(args.repeat):
        for caching in ((True, False) if rep % 2 == 0 else (False, True)):
            r = run(engines[caching], prompts, args.unique_output_len, f"c{rep}{int(caching)}")
            assert r["hits"] == 0
            times[caching].append(r["elapsed_s"])
            outputs[caching] = r["outputs"]
    assert outputs[True] == outputs[False], "outputs differ with prefix caching"
    med = {c: statistics.median(t) for c, t in times.items()}
    for caching in (True, False):
        runs = ", ".join(f"{t * 1e3:.1f}" for t in times[caching])
        print(f"caching {'on ' if caching else 'off'}: median {med[caching] * 1e3:.1f} ms "
              f"({n_tok / med[caching]:.1f} tok/s); runs (ms) {runs}")
    pairs = statistics.median(on / off for on, off in zip(times[True], times[False]))
    print(f"time on / off - 1 at 0% hits: medians {(med[True] / med[False] - 1) * 100:+.2f}%, "
          f"best runs {(min(times[True]) / min(times[False]) - 1) * 100:+.2f}%, "
          f"median of back-to-back pairs {(pairs - 1) * 100:+.2f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["shared", "unique", "both"], default="both")
    p.add_argument("--num-prefixes", type=int, default=10)
    p.add_argument("--prefix-len", type=int, default=512)
    p.add_argument("--suffix-len", type=int, default=64)
    p.add_argument("--requests-per-prefix", type=int, default=5)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--unique-requests", type=int, default=32)
    p.add_argument("--unique-prompt-len", type=int, default=256)
    p.add_argument("--unique-output-len", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3, help="runs per setting (best for (b), median for (c))")
    throughput.add_engine_model_args(p)
    args = p.parse_args()

    os.makedirs(args.cache_dir, exist_ok=True)
    model_dir = args.model_dir or throughput.build_checkpoint(args)
    engines = {caching: make_engine(model_dir, caching, args) for caching in (True, False)}
    vocab = engines[True].model_info.vocab_size
    for caching, engine in engines.items():  # warm up threads and buffers
        run(engine, [[5] * 40], 4, f"warmup{int(caching)}")
    print(f"model {model_dir} ({args.dtype}), {args.num_threads} threads, block_size {args.block_size}, "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)
    if args.workload in ("shared", "both"):
        bench_shared(args, vocab, engines)
    if args.workload in ("unique", "both"):
        bench_unique(args, vocab, engines)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
