#!/usr/bin/env python3
"""Where pagedllm's time goes per engine step, at a given batch size (CPU).

Runs `batch` requests (--input-len prompt tokens, --output-len output tokens, greedy, forced to
length) through LLM.generate and reports:
  - step timing: wall time, the time inside the C++ `Engine.step()` calls (schedule -> execute
    -> sample -> update) and the rest (Python: LLMEngine.step's output handling and
    detokenization), steps and the median step time; by default only the decode steps (after
    every request has its first token), --phase all for the whole LLM.generate call;
  - with --perf: a sampling profile (perf record -e cpu-clock, attached to this process for the
    timed generate only, all threads) grouped into GEMM, attention, sampling, scheduler, Python,
    thread pool, kernel, ... with CPU-ms per step per group and the top symbols.
Symbols: the installed extension is stripped; --core-dir points at a package directory whose
pagedllm/_core*.so is an unstripped link of the same objects (see RESULTS.md for the recipe).

  python benchmarks/profile_step.py --batch 1 --perf
  python benchmarks/profile_step.py --batch 8 --input-len 512 --output-len 1 --phase all --perf   # prefill
  python benchmarks/profile_step.py --batch 32 --dtype bfloat16 --perf --core-dir /tmp/prof/pkg
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))

# (group, dso regex, symbol regex); first match wins.
GROUPS = [
    ("GEMM: OpenBLAS sgemm", r"openblas", r""),
    ("GEMM: pagedllm linear kernels", r"", r"linear|small_m|packed_tile|sgemm|gemm|dpbf16|widen"),
    ("attention", r"", r"attention|attend|softmax_update|qk_group|qk_scores|pv_block|pv_cols|pv_accumulate|combine|"
                       r"copy_partial|write_output|scale_row|for_each_dynamic"),
    ("KV cache write", r"", r"write_kv_cache"),
    ("rms_norm", r"", r"rms_norm"),
    ("rotary", r"", r"rotary|cos_sin"),
    ("silu_and_mul", r"", r"silu"),
    ("embedding / gather", r"", r"embedding|gather_rows"),
    ("sampling", r"", r"Sampler|sample|radix|top_k|top_p|logprob|argmax"),
    ("scheduler + KV manager", r"", r"Scheduler|KVCacheManager|BlockPool|FreeBlockQueue|hash_block"),
    ("runner: build inputs", r"", r"ModelRunner|build_inputs|InputBatch"),
    ("thread pool (dispatch, spin, wait)", r"", r"ThreadPool|parallel_for|_State_impl|sched_yield"),
    ("other pagedllm C++", r"_core", r""),
    ("Python interpreter", r"python|\.cpython-", r""),
    ("detokenize (tokenizers, from Python)", r"tokenizers", r""),
    ("kernel", r"kernel|vdso", r""),
    ("libc / libstdc++ / libm", r"libc|libstdc|libm|ld-linux", r""),
]


def group_of(dso: str, sym: str) -> str:
    for name, dso_re, sym_re in GROUPS:
        if dso_re and not re.search(dso_re, dso):
            continue
        if sym_re and not re.search(sym_re, sym):
            continue
        return name
    return f"other ({dso})"


def parse_perf(path: str) -> list[tuple[float, str, str]]:
    """[(percent, dso, symbol)] of `perf report --no-children --sort dso,sym`."""
    out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none",
                          "--percent-limit", "0"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(4).strip()))
    return rows


def perf_samples(path: str) -> int:
    """Exact sample count (the sum of `perf report -n` rows)."""
    out = subprocess.run(["perf", "report", "-i", path, "--stdio", "-n", "-g", "none", "--sort", "dso"],
                         capture_output=True, text=True).stdout
    return sum(int(m.group(1)) for m in re.finditer(r"^\s*[\d.]+%\s+(\d+)\s", out, re.M))


class TimedCore:
    """Forwards to the C++ engine, timing step()."""

    def __init__(self, core) -> None:
        self._core = core
        self.step_s: list[float] = []

    def step(self):
        t0 = time.perf_counter()
        out = self._core.step()
        self.step_s.append(time.perf_counter() - t0)
        return out

    def __getattr__(self, name):
        return getattr(self._core, name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--model", choices=["small", "medium"], default="small")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--phase", choices=["decode", "all"], default="decode",
                   help="decode: time (and profile) only the steps after every request has its first token, "
                        "driving LLMEngine.step; all: the whole LLM.generate call")
    p.add_argument("--perf", action="store_true", help="sample with perf record during the timed run")
    p.add_argument("--perf-freq", type=int, default=2000)
    p.add_argument("--call-graph", action="store_true", help="record DWARF call graphs (keep --perf-out to read them)")
    p.add_argument("--perf-out", help="keep perf.data here")
    p.add_argument("--core-dir", help="import pagedllm from this directory (an unstripped _core)")
    p.add_argument("--top", type=int, default=12, help="top symbols to list")
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "pagedllm-bench"))
    args = p.parse_args()

    if args.core_dir:  # bypass the editable-install finder
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
        sys.path.insert(0, args.core_dir)
    sys.path.insert(0, HERE)
    import random

    import throughput

    ns = argparse.Namespace(dtype=args.dtype, cache_dir=args.cache_dir, **throughput.PRESETS[args.model])
    os.makedirs(args.cache_dir, exist_ok=True)
    model_dir = throughput.build_checkpoint(ns)

    from pagedllm import LLM, SamplingParams

    llm = LLM(model_dir, dtype=args.dtype, num_threads=args.num_threads, enable_prefix_caching=False,
              max_model_len=args.input_len + args.output_len + 16, log_stats=False)
    rng = random.Random(0)
    vocab = throughput.model_shape(model_dir)["vocab"]
    prompts = [{"prompt_token_ids": [rng.randrange(3, vocab) for _ in range(args.input_len)]}
               for _ in range(args.batch)]
    params = SamplingParams(temperature=0, max_tokens=args.output_len, ignore_eos=True)
    llm.generate(prompts[:1], SamplingParams(temperature=0, max_tokens=4, ignore_eos=True), use_tqdm=False)
    core = TimedCore(llm.llm_engine._core)
    llm.llm_engine._core = core

    eng = llm.llm_engine
    if args.phase == "decode" and args.output_len < 2:
        p.error("--phase decode needs --output-len >= 2")
    if args.phase == "decode":  # prefill first, untimed: every request has its first token
        for i, prompt in enumerate(prompts):
            eng.add_request(f"r{i}", prompt, params)
        started: set[str] = set()
        while len(started) < len(prompts):
            started.update(o.request_id for o in eng.step() if o.outputs[0].token_ids)
        core.step_s.clear()
    perf = None
    perf_path = args.perf_out or tempfile.mktemp(suffix=".perf.data")
    if args.perf:
        cg = ["--call-graph", "dwarf,16384"] if args.call_graph else []
        perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(args.perf_freq), *cg, "-p",
                                 str(os.getpid()), "-o", perf_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf attaches
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if args.phase == "decode":
        while eng.has_unfinished_requests():
            eng.step()
    else:
        llm.generate(prompts, params, use_tqdm=False)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    steps = core.step_s
    in_core = sum(steps)
    decode = sorted(steps)[: max(1, len(steps) - 2)]  # drop the slowest (prefill) steps
    print(f"batch {args.batch} x ({args.input_len} in, {args.output_len} out), {args.model} {args.dtype}, phase {args.phase}, "
          f"{args.num_threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    print(f"wall {wall:.3f} s, {len(steps)} steps, C++ Engine.step {in_core:.3f} s ({100 * in_core / wall:.1f}%), "
          f"outside (Python) {wall - in_core:.3f} s ({100 * (wall - in_core) / wall:.1f}%), process CPU {cpu:.3f} s")
    print(f"step time: median {1e3 * statistics.median(steps):.2f} ms, decode-step mean {1e3 * statistics.mean(decode):.2f} ms"
          f", slowest {1e3 * max(steps):.2f} ms; {args.batch * (args.output_len - (args.phase == 'decode')) / wall:.1f}"
          " output tok/s")
    if not perf:
        return
    rows = parse_perf(perf_path)
    n = perf_samples(perf_path)
    cpu_s = n / args.perf_freq
    groups: dict[str, float] = defaultdict(float)
    for pct, dso, sym in rows:
        groups[group_of(dso, sym)] += pct
    print(f"perf: {n} samples at {args.perf_freq} Hz = {cpu_s:.3f} CPU s on all threads "
          f"({1e3 * cpu_s / len(steps):.2f} CPU ms per step)")
    print(f"{'group':<38}{'%':>7}{'CPU ms/step':>13}   (share x process CPU time of the timed steps)")
    for name, pct in sorted(groups.items(), key=lambda kv: -kv[1]):
        if pct >= 0.1:
            print(f"{name:<38}{pct:>7.1f}{pct / 100 * 1e3 * cpu / len(steps):>13.3f}")
    print("top symbols:")
    for pct, dso, sym in rows[:args.top]:
        print(f"  {pct:6.2f}%  {dso:<28} {sym[:110]}")
    if not args.perf_out:
        os.unlink(perf_path)


if __name__ == "__main__":
    main()
