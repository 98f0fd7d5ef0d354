#!/usr/bin/env python3
"""KV memory sharing: parallel sampling and beam search on shared blocks (issue 4 (a)) and
internal waste of the paged KV cache (issue 4 (d)).

Runs the C++ engine's step loop directly (pagedllm._core.Engine, token ids in) on the
random-weight Llama of benchmarks/throughput.py. The numbers depend only on the scheduler and
the block size, not on the model's weights or size, so a small model gives the same figures.

  parallel (issue 4 (a)): one request of n samples (n in --ns) of a --prompt-len-token prompt,
    --output-len tokens each (seeded sampling), added as parallel samples
    (Engine.add_parallel_requests: the prompt's full blocks shared) vs as n separate requests
    (no sharing); prefix caching off in both. Reports the peak KV blocks in use (the memory
    the request needs) and the prompt tokens computed, and checks the outputs are identical.
  beam (issue 4 (a)): one beam search of beam_width W (W in --widths) over a --prompt-len-token
    prompt, --output-len tokens (ignore_eos, so every beam runs to the end), prefix caching
    off. The beams share blocks copy-on-write (full blocks shared, the partial last block
    copied when a beam forks). After every step: blocks in use (shared) vs the blocks the same
    beams' tables would need without sharing (in use + num_kv_blocks_saved_by_sharing, i.e.
    every beam holding its own copy of its whole sequence); printed: the peaks of both and the
    mean over steps of the saving.
  waste (issue 4 (d)): the mixed workload of benchmarks/throughput.py (--num-prompts prompts,
    input length uniform in --input-range, output length uniform in --output-range, all
    submitted at once). After every step the engine reports kv_internal_waste = (allocated -
    filled slots) / allocated slots over the blocks held by running requests; printed: the
    mean over steps, the slot-weighted mean (sum of unused slots over sum of allocated slots
    across steps) and the maximum.

  python benchmarks/memory_sharing.py                      # all three
  python benchmarks/memory_sharing.py --workload parallel --ns 2,4,8
  python benchmarks/memory_sharing.py --workload beam --widths 2,4,8
  python benchmarks/memory_sharing.py --block-size 32 --layers 2 --hidden 256
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import throughput  # noqa: E402  (the checkpoint builder and the mixed workload)


def make_engine(model_dir: str, args, caching: bool = False):
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


def core_params(max_tokens: int, seed: int | None = None):
    from pagedllm import _core

    p = _core.SamplingParams()
    p.temperature = 0.0 if seed is None else 1.0
    p.seed = seed
    p.ignore_eos = True
    p.max_tokens = max_tokens
    return p


def run_samples(engine, prompt: list[int], n: int, args, grouped: bool, tag: str) -> tuple[dict, int, int]:
    """Runs n seeded samples of prompt; (tokens by id, peak blocks in use, prompt tokens computed)."""
    ids = [f"{tag}#{i}" for i in range(n)]
    params = [core_params(args.output_len, seed=args.seed + i) for i in range(n)]
    before = engine.stats().num_prompt_tokens_computed
    if grouped:
        engine.add_parallel_requests(ids, prompt, params)
    else:
        for rid, p in zip(ids, params):
            engine.add_request(rid, prompt, p)
    tokens: dict = {rid: [] for rid in ids}
    peak = 0
    while engine.has_unfinished_requests():
        for o in engine.step():
            tokens[o.request_id] += list(o.new_token_ids)
        peak = max(peak, engine.stats().num_kv_blocks_used)
    return tokens, peak, engine.stats().num_prompt_tokens_computed - before


def bench_parallel(args, model_dir: str, vocab: int) -> None:
    import random

    rng = random.Random(args.seed)
    engine = make_engine(model_dir, args)
    print(f"(a) KV blocks per request of n samples: {args.prompt_len}-token prompt, {args.output_len} "
          f"output tokens each, block_size {args.block_size}, prefix caching off")
    print(f"    {'n':>3} {'shared':>8} {'separate':>9} {'saved':>7} {'prompt tokens computed':>24}")
    for n in (int(x) for x in args.ns.split(",")):
        prompt = [rng.randrange(3, vocab) for _ in range(args.prompt_len)]
        shared, peak_shared, computed_shared = run_samples(engine, prompt, n, args, True, f"g{n}")
        separate, peak_separate, computed_separate = run_samples(engine, prompt, n, args, False, f"s{n}")
        same = all(shared[f"g{n}#{i}"] == separate[f"s{n}#{i}"] for i in range(n))
        assert same, f"n={n}: parallel samples differ from separate requests"
        print(f"    {n:>3} {peak_shared:>8} {peak_separate:>9} {100 * (1 - peak_shared / peak_separate):>6.1f}% "
              f"{computed_shared:>11} vs {computed_separate:<11}", flush=True)


def bench_beam(args, model_dir: str, vocab: int) -> None:
    import random
    import time

    from pagedllm import _core

    rng = random.Random(args.seed)
    engine = make_engine(model_dir, args)
    print(f"(a) KV blocks of one beam search: {args.prompt_len}-token prompt, {args.output_len} output "
          f"tokens (ignore_eos), block_size {args.block_size}, prefix caching off")
    print(f"    {'W':>3} {'shared peak':>12} {'unshared peak':>14} {'saved at peak':>14} {'mean saved':>11} {'time':>7}")
    for width in (int(x) for x in args.widths.split(",")):
        prompt = [rng.randrange(3, vocab) for _ in range(args.prompt_len)]
        params = _core.BeamSearchParams()
        params.beam_width = width
        params.max_tokens = args.output_len
        params.ignore_eos = True
        start = time.perf_counter()
        engine.add_beam_search_request(f"beam{width}", prompt, params)
        peak_shared = peak_unshared = 0
        savings = []
        result = None
        while engine.has_unfinished_requests():
            for o in engine.step():
                if o.finished:
                    result = o
            s = engine.stats()
            if s.num_kv_blocks_used == 0:
                continue
            unshared = s.num_kv_blocks_used + s.num_kv_blocks_saved_by_sharing
            peak_shared = max(peak_shared, s.num_kv_blocks_used)
            peak_unshared = max(peak_unshared, unshared)
            savings.append(1 - s.num_kv_blocks_used / unshared)
        elapsed = time.perf_counter() - start
        assert result is not None and len(result.beams) == width
        assert all(len(b.token_ids) == args.output_len for b in result.beams)
        print(f"    {width:>3} {peak_shared:>12} {peak_unshared:>14} {100 * (1 - peak_shared / peak_unshared):>13.1f}% "
              f"{100 * sum(savings) / len(savings):>10.1f}% {elapsed:>6.1f}s", flush=True)


def bench_waste(args, model_dir: str, vocab: int) -> None:
    rng_in = tuple(int(x) for x in args.input_range.split(","))
    rng_out = tuple(int(x) for x in args.output_range.split(","))
    workload = throughput.make_workload("mixed", args.num_prompts, 0, 0, rng_in, rng_out, vocab, args.seed)
    engine = make_engine(model_dir, args)
    for i, r in enumerate(workload):
        engine.add_request(f"w{i}", r["prompt"], core_params(r["output_len"]))
    wastes, unused, allocated, peak_blocks = [], 0, 0, 0
    while engine.has_unfinished_requests():
        engine.step()
        s = engine.stats()
        if s.num_kv_slots_allocated == 0:
            continue
        wastes.append(s.kv_internal_waste)
        unused += s.num_kv_slots_allocated - s.num_kv_slots_filled
        allocated += s.num_kv_slots_allocated
        peak_blocks = max(peak_blocks, s.num_kv_blocks_used)
    print(f"(d) internal waste, mixed workload: {args.num_prompts} prompts, input {args.input_range}, "
          f"output {args.output_range}, block_size {args.block_size}, {len(wastes)} steps, "
          f"peak {peak_blocks} blocks in use")
    print(f"    mean over steps {100 * sum(wastes) / len(wastes):.2f}%, slot-weighted "
          f"{100 * unused / allocated:.2f}%, max {100 * max(wastes):.2f}%", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["parallel", "beam", "waste", "both", "all"], default="all",
                   help="both = parallel + waste (the earlier default); all = the three")
    p.add_argument("--ns", default="2,4,8", help="parallel: sample counts")
    p.add_argument("--widths", default="2,4,8", help="beam: beam widths")
    p.add_argument("--prompt-len", type=int, default=512, help="parallel, beam: prompt tokens")
    p.add_argument("--output-len", type=int, default=32, help="parallel, beam: output tokens per sequence")
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--input-range", default="16,512", help="min,max prompt tokens")
    p.add_argument("--output-range", default="16,256", help="min,max output tokens")
    throughput.add_engine_model_args(p)
    args = p.parse_args()

    os.makedirs(args.cache_dir, exist_ok=True)
    model_dir = args.model_dir or throughput.build_checkpoint(args)
    vocab = make_engine(model_dir, args).model_info.vocab_size
    print(f"model {model_dir} ({args.dtype}), {args.num_threads} threads", flush=True)
    if args.workload in ("parallel", "both", "all"):
        bench_parallel(args, model_dir, vocab)
    if args.workload in ("beam", "all"):
        bench_beam(args, model_dir, vocab)
    if args.workload in ("waste", "both", "all"):
        bench_waste(args, model_dir, vocab)


if __name__ == "__main__":
    main()
