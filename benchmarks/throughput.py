#!/usr/bin/env python3
"""Offline throughput: pagedllm vs llama.cpp vs Hugging Face transformers on one checkpoint.

A seeded synthetic workload of token-id prompts, outputs forced to their length (EOS ignored):
  fixed: --num-prompts (32) x --input-len (128) tokens, each generating --output-len (128);
  mixed: --num-prompts (64), input length uniform in --input-range (16,512), output length
         uniform in --output-range (16,256).
Engines (--engines, each in its own subprocess, so peak RSS is its own):
  pagedllm  LLM.generate on the whole workload (continuous batching; prefix caching off, so
            repeated timings of the same prompts do not hit a cache);
  llamacpp  llama.cpp through llama-cpp-python's low-level API (benchmarks/llamacpp_batched.py):
            the checkpoint converted to GGUF by benchmarks/gguf_convert.py (F32 or BF16 like the
            checkpoint, KV cache in the same type), continuous batching of up to N sequences in
            one llama_batch, tried at each N of --llamacpp-parallel (best reported);
  hf        transformers `generate`: static batches in workload order, left padding, greedy,
            every batch runs to its longest output; each of --hf-batch-sizes tried (best
            reported; a size is abandoned once slower than the best so far).
Each worker also reports the time from its process start to its first generated token (TTFT:
interpreter start, imports, model load, first prompt), single-stream decode tokens/s (batch 1:
--b1-input-len prompt, (time of N+1 tokens - time of 1 token) / N), and prefill (--prefill
prompts, one output token each: prompt tokens/s and the model FLOP rate, compared with the
machine's peak GEMM rate measured in the same run). --rounds R runs every engine R times,
interleaved, and reports medians.

Models: random-weight Llama checkpoints written once with transformers into --cache-dir:
"small" (~25M: 6 layers, hidden 512, 8 heads, 2 KV heads, intermediate 1408, vocab 8192) and
"medium" (~100M: 12 layers, hidden 768, 12 heads, 4 KV heads, intermediate 2048, vocab 16000).

  python benchmarks/throughput.py                                  # small, fixed, fp32, 3 engines
  python benchmarks/throughput.py --workload mixed --dtype bfloat16 --rounds 3
  python benchmarks/throughput.py --model medium --engines pagedllm,llamacpp
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
sys.path.insert(0, os.path.dirname(HERE))

PRESETS = {
    "small": dict(layers=6, hidden=512, heads=8, kv_heads=2, intermediate=1408, vocab=8192),
    "medium": dict(layers=12, hidden=768, heads=12, kv_heads=4, intermediate=2048, vocab=16000),
}
ENGINES = ("pagedllm", "llamacpp", "hf")


# ---------------------------------------------------------------------------------------------
# Workload, checkpoint and FLOPs (parent process)


def make_workload(kind: str, num_prompts: int, input_len: int, output_len: int, input_range: tuple[int, int],
                  output_range: tuple[int, int], vocab: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    requests = []
    for _ in range(num_prompts):
        if kind == "fixed":
            n_in, n_out = input_len, output_len
        else:
            n_in, n_out = rng.randint(*input_range), rng.randint(*output_range)
        requests.append({"prompt": [rng.randrange(3, vocab) for _ in range(n_in)], "output_len": n_out})
    return requests


def write_tokenizer(model_dir: str, vocab_size: int) -> None:
    """Byte-level tokenizer.json: ids 0..255 are bytes, the rest are extra special tokens."""
    from pagedllm.demo import byte_alphabet, byte_level_tokenizer

    byte_map = byte_alphabet()
    tok = byte_level_tokenizer([f"<|extra_{i}|>" for i in range(256, vocab_size)])
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": byte_map[1], "eos_token": byte_map[2],
                   "pad_token": byte_map[0]}, f)


def add_engine_model_args(p: argparse.ArgumentParser) -> None:
    """Engine sizes and the random Llama's shape, shared by the memory-sharing and
    prefix-caching benchmarks (the ~25M "small" model by default)."""
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "pagedllm-bench"))
    p.add_argument("--model-dir", help="use this checkpoint instead of building the random Llama")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--vocab", type=int, default=8192)


def build_checkpoint(args) -> str:
    name = (f"llama-l{args.layers}-h{args.hidden}-a{args.heads}-kv{args.kv_heads}-i{args.intermediate}"
            f"-v{args.vocab}-{args.dtype}")
    path = os.path.join(args.cache_dir, name)
    if os.path.exists(os.path.join(path, "tokenizer_config.json")):
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    cfg.architectures = ["LlamaForCausalLM"]
    model = transformers.LlamaForCausalLM(cfg).eval()
    if args.dtype == "bfloat16":
        for p in model.parameters():
            p.data = p.data.to(torch.bfloat16)
    model.config.dtype = args.dtype
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=args.cache_dir)
    model.save_pretrained(tmp, safe_serialization=True)
    write_tokenizer(tmp, args.vocab)
    if os.path.exists(path):  # another run finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, path)
    return path


def model_shape(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return {"layers": c["num_hidden_layers"], "hidden": c["hidden_size"], "heads": c["num_attention_heads"],
            "kv_heads": c.get("num_key_value_heads", c["num_attention_heads"]), "head_dim": hd,
            "intermediate": c["intermediate_size"], "vocab": c["vocab_size"]}


def prefill_flops(shape: dict, prompt_lens: list[int]) -> float:
    """Model FLOPs of prefilling these prompts with logits of the last position only:
    2 * (layer matmul params) per token, causal attention 4 * heads * head_dim * (p + 1) per token
    at position p and layer, and the LM head once per prompt."""
    h, hd, L = shape["hidden"], shape["head_dim"], shape["layers"]
    q, kv = shape["heads"] * hd, shape["kv_heads"] * hd
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * shape["intermediate"]
    total = 0.0
    for n in prompt_lens:
        total += 2.0 * per_layer * L * n
        total += 4.0 * shape["heads"] * hd * L * n * (n + 1) / 2
        total += 2.0 * h * shape["vocab"]
    return total


def layer_params(shape: dict) -> int:
    h, hd = shape["hidden"], shape["head_dim"]
    q, kv = shape["heads"] * hd, shape["kv_heads"] * hd
    return shape["layers"] * (h * q + 2 * h * kv + q * h + 3 * h * shape["intermediate"] + 2 * h)


# ---------------------------------------------------------------------------------------------
# Workers (subprocesses). Each returns one JSON dict.


def peak_rss_mib() -> float:
    """This process's RSS high-water mark. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    exec, so a worker would inherit the parent's peak (e.g. after it built a checkpoint with torch)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def timed(fn, repeat: int) -> float:
    """Best wall time of `repeat` calls."""
    return timed_cpu(fn, repeat)[0]


def timed_cpu(fn, repeat: int) -> tuple[float, float]:
    """(wall s, process CPU s) of the fastest of `repeat` calls. On a loaded machine CPU time is
    the steadier number for one thread (it does not count time waiting for a core)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        took = (time.perf_counter() - t0, time.process_time() - c0)
        best = min(best, took)
    return best


def core_build() -> str:
    """The pagedllm extension under test: its file's modification time and sha256 prefix (other
    engineers rebuild it; results from different builds must not be mixed)."""
    import hashlib

    from pagedllm import _core

    with open(_core.__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return f"{time.strftime('%H:%M:%S', time.gmtime(os.path.getmtime(_core.__file__)))} UTC sha256 {digest}"


def worker_pagedllm(a, workload: list, extra: dict) -> dict:
    import inspect

    from pagedllm import LLM, SamplingParams

    t_load = time.perf_counter()
    max_len = max(len(r["prompt"]) + r["output_len"] for r in workload + extra["prefill"])
    max_len = max(max_len, len(extra["b1_prompt"]) + a.b1_output_len + 1, 64)
    kwargs = dict(dtype=a.dtype, num_threads=a.num_threads, max_model_len=max_len, seed=0, log_stats=False)
    if a.max_num_seqs:
        kwargs["max_num_seqs"] = a.max_num_seqs
    if "enable_prefix_caching" in inspect.signature(LLM.__init__).parameters:
        kwargs["enable_prefix_caching"] = False  # repeated runs of the same prompts: no cache hits
    llm = LLM(a._model_dir, **kwargs)
    load_s = time.perf_counter() - t_load

    def run(reqs: list[dict]):
        prompts = [{"prompt_token_ids": r["prompt"]} for r in reqs]
        params = [SamplingParams(temperature=0, max_tokens=r["output_len"], ignore_eos=True) for r in reqs]
        return llm.generate(prompts, params, use_tqdm=False)

    run([{"prompt": workload[0]["prompt"], "output_len": 1}])
    ttft = time.time() - a._t0
    outs = None

    def main_run():
        nonlocal outs
        outs = run(workload)

    elapsed, cpu = timed_cpu(main_run, a.repeat)
    n_out = sum(len(o.outputs[0].token_ids) for o in outs)
    assert n_out == sum(r["output_len"] for r in workload), "pagedllm: outputs not forced to length"
    res = {"engine": "pagedllm", "elapsed_s": elapsed, "cpu_s": cpu, "load_s": load_s, "ttft_s": ttft,
           "peak_rss_mib": peak_rss_mib(), "core_build": core_build()}
    res.update(extras(a, extra, run))
    return res


def worker_llamacpp(a, workload: list, extra: dict) -> dict:
    from gguf_convert import ensure_gguf
    from llamacpp_batched import LlamaCppBatched

    gguf_path = ensure_gguf(a._model_dir)
    max_seq = max(len(r["prompt"]) + r["output_len"] for r in workload)
    sizes = sorted({min(int(x), len(workload)) for x in a.llamacpp_parallel.split(",")}, reverse=True)
    opts = dict(threads=a.num_threads, n_batch=a.llamacpp_n_batch, n_ubatch=a.llamacpp_n_batch,
                kv_type=({"float32": "f32", "bfloat16": "bf16"}[a.dtype] if a.llamacpp_kv_type == "model"
                         else a.llamacpp_kv_type),
                flash_attn=a.llamacpp_flash_attn, kv_unified=a.llamacpp_kv_unified)
    t_load = time.perf_counter()
    eng = LlamaCppBatched(gguf_path, sizes[0], max_seq, **opts)
    load_s = time.perf_counter() - t_load
    eng.generate([{"prompt": workload[0]["prompt"], "output_len": 1}])
    ttft = time.time() - a._t0
    per_size: dict[str, float] = {}
    cpu_size: dict[str, float] = {}
    for n in sizes:
        if n != sizes[0]:
            eng.close()
            eng = LlamaCppBatched(gguf_path, n, max_seq, **opts)
            eng.generate([{"prompt": workload[0]["prompt"][:8], "output_len": 2}])  # warm-up
        outs = []
        per_size[str(n)], cpu_size[str(n)] = timed_cpu(lambda: outs.append(eng.generate(workload)), a.repeat)
        assert sum(map(len, outs[-1])) == sum(r["output_len"] for r in workload)
    eng.close()
    best = min(per_size, key=per_size.get)
    res = {"engine": f"llama.cpp ({best} parallel)", "elapsed_s": per_size[best], "cpu_s": cpu_size[best],
           "load_s": load_s, "ttft_s": ttft,
           "peak_rss_mib": peak_rss_mib(), "per_parallel_s": per_size}
    engines = {}

    def run(reqs: list[dict]):
        key = len(reqs)
        if key not in engines:
            seq = max(len(r["prompt"]) + r["output_len"] for r in reqs) + 1
            engines[key] = LlamaCppBatched(gguf_path, len(reqs), max(seq, len(extra["b1_prompt"]) + a.b1_output_len + 2),
                                           **opts)
        return engines[key].generate(reqs)

    res.update(extras(a, extra, run))
    return res


def worker_hf(a, workload: list, extra: dict) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    torch.set_num_threads(a.num_threads)
    t_load = time.perf_counter()
    torch_dtype = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(a._model_dir, dtype=torch_dtype).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(a._model_dir, "tokenizer.json"))
    load_s = time.perf_counter() - t_load

    def gen_batch(batch: list[dict]) -> None:
        width = max(len(r["prompt"]) for r in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding
            ids[i, width - len(r["prompt"]):] = torch.tensor(r["prompt"])
            mask[i, width - len(r["prompt"]):] = 1
        new = max(r["output_len"] for r in batch)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                 do_sample=False, pad_token_id=0)
        assert out.shape[1] == width + new
        tok.batch_decode([out[i, width:width + r["output_len"]].tolist() for i, r in enumerate(batch)],
                         skip_special_tokens=True)

    def run_sized(batch_size: int, give_up_after: float) -> bool:
        """Runs the workload in static batches; False once slower than give_up_after seconds."""
        t_start = time.perf_counter()
        for start in range(0, len(workload), batch_size):
            if time.perf_counter() - t_start > give_up_after:
                return False
            gen_batch(workload[start:start + batch_size])
        return True

    gen_batch([{"prompt": workload[0]["prompt"], "output_len": 1}])
    ttft = time.time() - a._t0
    per_batch: dict[str, float | None] = {}
    cpu_batch: dict[str, float] = {}
    best_s = float("inf")
    for bs in sorted({int(x) for x in a.hf_batch_sizes.split(",")}, reverse=True):
        per_batch[str(bs)] = None
        for _ in range(a.repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            if not run_sized(bs, best_s):
                break
            took = time.perf_counter() - t0
            if took <= (per_batch[str(bs)] or took):
                per_batch[str(bs)], cpu_batch[str(bs)] = took, time.process_time() - c0
            best_s = min(best_s, took)
    best = min((k for k in per_batch if per_batch[k] is not None), key=per_batch.get)
    res = {"engine": f"hf (batch {best})", "elapsed_s": per_batch[best], "cpu_s": cpu_batch[best], "load_s": load_s,
           "ttft_s": ttft,
           "peak_rss_mib": peak_rss_mib(), "per_batch_size_s": per_batch}
    res.update(extras(a, extra, gen_batch))
    return res


def extras(a, extra: dict, run) -> dict:
    """Single-stream decode and prefill with the engine's run(requests) (greedy, forced length)."""
    res = {}
    if a.b1_output_len > 0:
        prompt = extra["b1_prompt"]
        run([{"prompt": prompt, "output_len": 2}])
        reps = max(a.repeat, 3)  # a difference of two timings: best of at least 3 each
        t1 = timed(lambda: run([{"prompt": prompt, "output_len": 1}]), reps)
        tn = timed(lambda: run([{"prompt": prompt, "output_len": a.b1_output_len + 1}]), reps)
        res["b1_decode_tok_s"] = a.b1_output_len / (tn - t1) if tn > t1 else None
        res["b1_prefill_s"] = t1
    if extra["prefill"]:
        res["prefill_s"] = timed(lambda: run(extra["prefill"]), a.repeat)
    return res


def worker_gemm(a) -> dict:
    """Peak GEMM rates (GFLOP/s) on a.num_threads threads: OpenBLAS sgemm (the library pagedllm
    links, scipy-openblas32), and torch matmul (MKL fp32, oneDNN bf16) for reference."""
    import ctypes
    import glob

    os.environ["OPENBLAS_NUM_THREADS"] = str(a.num_threads)
    import numpy as np

    n = a.gemm_size
    flop = 2.0 * n * n * n
    res = {"gemm_size": n}
    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    y = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    try:
        import scipy_openblas32 as so

        lib = ctypes.CDLL(glob.glob(os.path.join(so.get_lib_dir(), "*.so*"))[0])
        lib.scipy_openblas_set_num_threads(ctypes.c_int(a.num_threads))
        z = np.empty_like(x)
        p = ctypes.c_void_p
        f = ctypes.c_float

        def sgemm():
            lib.scipy_cblas_sgemm(101, 111, 111, n, n, n, f(1.0), p(x.ctypes.data), n, p(y.ctypes.data), n, f(0.0),
                                  p(z.ctypes.data), n)

        sgemm()
        res["openblas_sgemm_gflops"] = flop / timed(sgemm, 5) / 1e9
    except Exception as e:  # noqa: BLE001 -- reported, not fatal
        res["openblas_sgemm_error"] = repr(e)
    try:
        import torch

        torch.set_num_threads(a.num_threads)
        for name, dt in (("torch_fp32_gflops", torch.float32), ("torch_bf16_gflops", torch.bfloat16)):
            tx, ty = torch.from_numpy(x).to(dt), torch.from_numpy(y).to(dt)
            torch.matmul(tx, ty)
            res[name] = flop / timed(lambda: torch.matmul(tx, ty), 5) / 1e9
    except ImportError:
        pass
    return res


# ---------------------------------------------------------------------------------------------
# Parent


def spawn(args, worker: str, model_dir: str, data_file: str) -> dict:
    cmd = [sys.executable, HERE, "--_worker", worker, "--_model-dir", model_dir, "--_workload", data_file,
           "--_t0", repr(time.time())]
    for k in ("dtype", "num_threads", "hf_batch_sizes", "repeat", "llamacpp_parallel", "llamacpp_n_batch",
              "llamacpp_kv_type", "llamacpp_flash_attn", "b1_output_len", "gemm_size", "max_num_seqs",
              "core_dir"):
        v = getattr(args, k)
        if v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    if args.llamacpp_kv_unified:
        cmd.append("--llamacpp-kv-unified")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f"{worker} worker failed (exit {r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_all(args, model_dir: str, workload: list, extra: dict, engines: list[str], log=print) -> tuple[dict, dict]:
    """Runs every engine args.rounds times, interleaved; returns ({engine: [results]}, gemm)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"workload": workload, "extra": extra}, f)
        data_file = f.name
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    gemm: list[dict] = []
    try:
        for rnd in range(args.rounds):
            if args.gemm_size:
                gemm.append(spawn(args, "gemm", model_dir, data_file))
            for e in engines:
                load = os.getloadavg()[0]
                r = spawn(args, e, model_dir, data_file)
                r["load_before"] = load
                runs[e].append(r)
                build = f"  [core {r['core_build']}]" if "core_build" in r else ""
                log(f"  round {rnd + 1} {r['engine']:<24} {r['elapsed_s']:7.2f} s  (load {load:.2f}){build}")
    finally:
        os.unlink(data_file)
    gemm_med = {k: statistics.median(g[k] for g in gemm) for k in (gemm[0] if gemm else {})
                if isinstance(gemm[0][k], float)}
    return runs, gemm_med


def summarize(runs: list[dict], n_in: int, n_out: int, prefill_tokens: int, prefill_flop: float) -> dict:
    def med(k: str) -> float | None:
        vals = [r[k] for r in runs if r.get(k) is not None]
        return statistics.median(vals) if vals else None

    s = {"engine": statistics.mode(r["engine"] for r in runs), "elapsed_s": med("elapsed_s"),
         "elapsed_all_s": [r["elapsed_s"] for r in runs], "ttft_s": med("ttft_s"), "load_s": med("load_s"),
         "peak_rss_mib": med("peak_rss_mib"), "b1_decode_tok_s": med("b1_decode_tok_s"), "cpu_s": med("cpu_s")}
    s["output_tokens_per_cpu_s"] = n_out / s["cpu_s"] if s["cpu_s"] else None
    s["output_tokens_per_s"] = n_out / s["elapsed_s"]
    s["total_tokens_per_s"] = (n_in + n_out) / s["elapsed_s"]
    if med("prefill_s"):
        s["prefill_tok_s"] = prefill_tokens / med("prefill_s")
        s["prefill_gflops"] = prefill_flop / med("prefill_s") / 1e9
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="pagedllm,llamacpp,hf", help="comma-separated: pagedllm, llamacpp, hf")
    p.add_argument("--skip-hf", action="store_true", help="drop hf from --engines")
    p.add_argument("--model", choices=sorted(PRESETS), default="small", help="model size preset")
    p.add_argument("--workload", choices=["fixed", "mixed"], default="fixed")
    p.add_argument("--num-prompts", type=int, help="default: 32 fixed, 64 mixed")
    p.add_argument("--input-len", type=int, default=128, help="fixed workload")
    p.add_argument("--output-len", type=int, default=128, help="fixed workload")
    p.add_argument("--input-range", default="16,512", help="mixed workload: min,max prompt tokens")
    p.add_argument("--output-range", default="16,256", help="mixed workload: min,max output tokens")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=1, help="run every engine this many times, interleaved; medians")
    p.add_argument("--repeat", type=int, default=1, help="inside a worker: time each run this many times, best")
    p.add_argument("--hf-batch-sizes", default="1,8,32", help="comma-separated static batch sizes to try")
    p.add_argument("--llamacpp-parallel", default="64", help="comma-separated max parallel sequences to try "
                   "(capped at the number of prompts)")
    p.add_argument("--llamacpp-n-batch", type=int, default=512, help="llama.cpp n_batch = n_ubatch")
    p.add_argument("--llamacpp-kv-type", choices=["model", "f16", "bf16", "f32"], default="model",
                   help="llama.cpp KV cache type (default: the model's, F32 or BF16, as pagedllm; llama.cpp's own "
                        "default f16 with flash attention was 1.5-2.4x slower on this CPU, see RESULTS.md)")
    p.add_argument("--llamacpp-flash-attn", choices=["auto", "on", "off"], default="off",
                   help="llama.cpp flash attention (default off: faster here with F32/BF16 KV)")
    p.add_argument("--llamacpp-kv-unified", action="store_true", help="one KV buffer for all sequences")
    p.add_argument("--max-num-seqs", type=int, help="pagedllm max_num_seqs (default: the engine's)")
    p.add_argument("--b1-input-len", type=int, default=128, help="single-stream decode: prompt tokens")
    p.add_argument("--b1-output-len", type=int, default=128, help="single-stream decode: tokens timed (0: skip)")
    p.add_argument("--prefill", default="8x512", help="prefill measurement: NxL prompts, 1 output token ('' skips)")
    p.add_argument("--gemm-size", type=int, default=2048, help="peak GEMM measurement n (n^3; 0 skips)")
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "pagedllm-bench"))
    p.add_argument("--model-dir", help="use this checkpoint instead of building the random Llama")
    for k in PRESETS["small"]:
        p.add_argument(f"--{k.replace('_', '-')}", type=int, help="override the preset")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--core-dir", help="pagedllm workers import pagedllm from this directory (a private build)")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    p.add_argument("--_model-dir", help=argparse.SUPPRESS)
    p.add_argument("--_workload", help=argparse.SUPPRESS)
    p.add_argument("--_t0", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._worker:
        if args.core_dir:  # bypass the editable-install finder
            sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
            sys.path.insert(0, args.core_dir)
        if args._worker == "gemm":
            print(json.dumps(worker_gemm(args)))
            return
        with open(args._workload) as f:
            data = json.load(f)
        fn = {"pagedllm": worker_pagedllm, "llamacpp": worker_llamacpp, "hf": worker_hf}[args._worker]
        print(json.dumps(fn(args, data["workload"], data["extra"])))
        return

    for k, v in PRESETS[args.model].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    engines = [e for e in args.engines.split(",") if e and not (args.skip_hf and e == "hf")]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        p.error(f"unknown engines {bad}; choose from {ENGINES}")
    if args.num_prompts is None:
        args.num_prompts = 32 if args.workload == "fixed" else 64
    os.makedirs(args.cache_dir, exist_ok=True)
    model_dir = args.model_dir or build_checkpoint(args)
    if "llamacpp" in engines:
        from gguf_convert import ensure_gguf

        ensure_gguf(model_dir)
    shape = model_shape(model_dir)
    rng_in = tuple(int(x) for x in args.input_range.split(","))
    rng_out = tuple(int(x) for x in args.output_range.split(","))
    workload = make_workload(args.workload, args.num_prompts, args.input_len, args.output_len, rng_in, rng_out,
                             shape["vocab"], args.seed)
    rng = random.Random(args.seed + 1)
    n_pre, l_pre = (int(x) for x in args.prefill.split("x")) if args.prefill else (0, 0)
    extra = {"b1_prompt": [rng.randrange(3, shape["vocab"]) for _ in range(args.b1_input_len)],
             "prefill": [{"prompt": [rng.randrange(3, shape["vocab"]) for _ in range(l_pre)], "output_len": 1}
                         for _ in range(n_pre)]}
    n_in = sum(len(r["prompt"]) for r in workload)
    n_out = sum(r["output_len"] for r in workload)
    print(f"model {model_dir} ({args.dtype}, {layer_params(shape) / 1e6:.1f}M layer params), workload "
          f"{args.workload}: {len(workload)} requests, {n_in} prompt tokens, {n_out} output tokens; "
          f"{args.num_threads} threads; {args.rounds} round(s) x best of {args.repeat}; "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)
    runs, gemm = run_all(args, model_dir, workload, extra, engines, log=lambda s: print(s, flush=True))
    pf_flop = prefill_flops(shape, [l_pre] * n_pre)
    summary = {e: summarize(runs[e], n_in, n_out, n_pre * l_pre, pf_flop) for e in engines}
    print_table(summary, gemm, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "model_dir": model_dir,
                       "prompt_tokens": n_in, "output_tokens": n_out, "gemm": gemm, "summary": summary, "runs": runs},
                      f, indent=2)


def print_table(summary: dict, gemm: dict, args) -> None:
    header = (f"{'engine':<24}{'out tok/s':>10}{'total tok/s':>12}{'out/CPU-s':>10}{'TTFT s':>8}{'RSS MiB':>9}"
              f"{'b1 tok/s':>9}"
              f"{'prefill tok/s':>14}{'GFLOP/s':>9}  rounds (s)")
    print(header)
    print("-" * len(header))
    for s in summary.values():
        b1 = f"{s['b1_decode_tok_s']:.1f}" if s.get("b1_decode_tok_s") else "-"
        pf = f"{s['prefill_tok_s']:.0f}" if s.get("prefill_tok_s") else "-"
        gf = f"{s['prefill_gflops']:.1f}" if s.get("prefill_gflops") else "-"
        rounds = ", ".join(f"{x:.2f}" for x in s["elapsed_all_s"])
        cpu = f"{s['output_tokens_per_cpu_s']:.1f}" if s.get("output_tokens_per_cpu_s") else "-"
        print(f"{s['engine']:<24}{s['output_tokens_per_s']:>10.1f}{s['total_tokens_per_s']:>12.1f}{cpu:>10}"
              f"{s['ttft_s']:>8.2f}{s['peak_rss_mib']:>9.0f}{b1:>9}{pf:>14}{gf:>9}  {rounds}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if gemm:
        print("peak GEMM (GFLOP/s, n=%d): " % args.gemm_size
              + ", ".join(f"{k.removesuffix('_gflops')} {v:.1f}" for k, v in gemm.items() if k.endswith("_gflops")))
    ours = summary.get("pagedllm")
    if ours:
        for other in ("llamacpp", "hf"):
            if other in summary:
                o = summary[other]
                line = f"pagedllm / {other}: throughput {ours['output_tokens_per_s'] / o['output_tokens_per_s']:.2f}x"
                if ours.get("output_tokens_per_cpu_s") and o.get("output_tokens_per_cpu_s"):
                    line += f" (per CPU-s {ours['output_tokens_per_cpu_s'] / o['output_tokens_per_cpu_s']:.2f}x)"
                if ours.get("b1_decode_tok_s") and o.get("b1_decode_tok_s"):
                    line += f", batch-1 decode {ours['b1_decode_tok_s'] / o['b1_decode_tok_s']:.2f}x"
                if ours.get("prefill_tok_s") and o.get("prefill_tok_s"):
                    line += f", prefill {ours['prefill_tok_s'] / o['prefill_tok_s']:.2f}x"
                print(line)
        if ours.get("prefill_gflops") and gemm:
            for k, v in gemm.items():
                if k.endswith("_gflops"):
                    print(f"pagedllm prefill FLOP rate / {k.removesuffix('_gflops')} peak: "
                          f"{100 * ours['prefill_gflops'] / v:.0f}%")


if __name__ == "__main__":
    main()
