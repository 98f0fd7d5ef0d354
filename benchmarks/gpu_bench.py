#!/usr/bin/env python3
"""GPU benchmarks of the engine on a random-weight Llama-3-8B-shaped bf16 checkpoint.

  (a) decode   single-stream decode tokens/s and its share of the HBM roofline: the time per token
               if every weight byte is read once at the device copy bandwidth measured in the same
               run (2 x bytes / time of a 1 GiB device-to-device copy) over the measured time;
  (b) offline  a ShareGPT-shaped synthetic workload (--num-requests 500, input ~200 / output
               ~180 tokens, log-normal lengths, EOS ignored) submitted at once: requests/s and
               tokens/s, and the same workload through Hugging Face transformers `generate` on the
               same device in the same run (static batches, left padding; ratios reported);
  (c) graphs   decode step time with graphs vs enforce_eager at batch 1, 32 and 256;
  (d) startup  start-up to ready of a fresh process (weights from the page cache: the first run
               warms it and is not reported), total and each phase of the engine's start-up log.

The checkpoint is written once into --cache-dir with numpy (safetensors by hand: a random bf16
pool tiled into every tensor, norms at 1), so building the 16 GB of an 8B model takes seconds
to disk speed, no torch initialisation. Engines run through pagedllm._core (token ids in,
token ids out: no tokenizer). Results: a table on stdout and JSON in --out.

  python benchmarks/gpu_bench.py                       # all sections, 8B shape, cuda
  python benchmarks/gpu_bench.py --sections decode,graphs
  python benchmarks/gpu_bench.py --device cpu --tiny   # smoke run of every section on the CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import subprocess
import sys
import time

import numpy as np

SHAPES = {
    "8b": dict(layers=32, hidden=4096, heads=32, kv_heads=8, intermediate=14336, vocab=128256, rope_theta=500000.0,
               max_pos=8192),
    "tiny": dict(layers=2, hidden=128, heads=4, kv_heads=2, intermediate=256, vocab=512, rope_theta=10000.0,
                 max_pos=1024),
}
SECTIONS = ("decode", "offline", "graphs", "startup")


# ---------------------------------------------------------------------------------------------
# Checkpoint


def tensor_shapes(s: dict) -> list[tuple[str, tuple[int, ...]]]:
    h, d = s["hidden"], s["hidden"] // s["heads"]
    out = [("model.embed_tokens.weight", (s["vocab"], h)), ("model.norm.weight", (h,)), ("lm_head.weight", (s["vocab"], h))]
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (s["heads"] * d, h)), (p + "self_attn.k_proj.weight", (s["kv_heads"] * d, h)),
                (p + "self_attn.v_proj.weight", (s["kv_heads"] * d, h)), (p + "self_attn.o_proj.weight", (h, s["heads"] * d)),
                (p + "mlp.gate_proj.weight", (s["intermediate"], h)), (p + "mlp.up_proj.weight", (s["intermediate"], h)),
                (p + "mlp.down_proj.weight", (h, s["intermediate"]))]
    return out


def build_checkpoint(cache_dir: str, shape_name: str) -> str:
    """A bf16 LlamaForCausalLM checkpoint (config.json, model.safetensors) of SHAPES[shape_name]."""
    s = SHAPES[shape_name]
    out = os.path.join(cache_dir, f"llama-{shape_name}-bf16")
    if os.path.exists(os.path.join(out, "done")):
        return out
    os.makedirs(out, exist_ok=True)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=s["vocab"], hidden_size=s["hidden"],
               intermediate_size=s["intermediate"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
               num_key_value_heads=s["kv_heads"], max_position_embeddings=s["max_pos"], rms_norm_eps=1e-5,
               rope_theta=s["rope_theta"], hidden_act="silu", tie_word_embeddings=False, torch_dtype="bfloat16",
               dtype="bfloat16", bos_token_id=1, eos_token_id=2)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    rng = np.random.default_rng(0)
    pool = (rng.standard_normal(1 << 22, dtype=np.float32) * 0.02).view(np.uint32)
    pool = (pool >> 16).astype(np.uint16)  # bf16 bits (truncation is fine for random weights)
    one = np.full(1, 0x3F80, dtype=np.uint16)  # bf16 1.0
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    names = tensor_shapes(s)
    for name, shp in names:
        n = int(np.prod(shp)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shp), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for k, (name, shp) in enumerate(names):
            numel = int(np.prod(shp))
            src = one if len(shp) == 1 else np.roll(pool, 7919 * k)
            for start in range(0, numel, pool.size):
                f.write(np.resize(src, min(pool.size, numel - start)).tobytes())
    open(os.path.join(out, "done"), "w").close()
    return out


def weight_bytes(s: dict, read_per_token: bool = False) -> int:
    """Bytes of all weights; read_per_token: those a decode step reads (one embedding row)."""
    total = sum(int(np.prod(shp)) * 2 for _, shp in tensor_shapes(s))
    return total - (s["vocab"] - 1) * s["hidden"] * 2 if read_per_token else total


# ---------------------------------------------------------------------------------------------
# Measurement helpers


def copy_bandwidth(device: str) -> float:
    """Bytes/s of a device-to-device copy (2 x size / time, best of 10): torch on cuda, numpy on cpu."""
    if device == "cpu":
        a = np.ones(1 << 27, dtype=np.float32)
        b = np.empty_like(a)
        best = min(timed(lambda: np.copyto(b, a)) for _ in range(10))
        return 2 * a.nbytes / best
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(10):
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    del a, b
    torch.cuda.empty_cache()
    return 2 * (1 << 30) / best


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def engine(args, model_dir: str, **kw):
    from pagedllm import _core

    cfg = _core.EngineConfig()
    cfg.model = model_dir
    cfg.device = args.device
    cfg.dtype = "bfloat16"
    cfg.max_model_len = args.max_model_len
    cfg.max_num_seqs = 256
    cfg.log_stats = False
    cfg.enable_prefix_caching = False
    cfg.gpu_memory_utilization = args.gpu_memory_utilization
    if args.device == "cpu":
        cfg.num_threads = args.num_threads
    for k, v in kw.items():
        setattr(cfg, k, v)
    return _core.Engine(cfg)


def params(max_tokens: int):
    from pagedllm import _core

    p = _core.SamplingParams()
    p.temperature = 0.0
    p.ignore_eos = True
    p.max_tokens = max_tokens
    return p


def run_to_end(eng) -> int:
    steps = 0
    while eng.has_unfinished_requests():
        eng.step()
        steps += 1
    return steps


# ---------------------------------------------------------------------------------------------
# Sections


def bench_decode(args, model_dir: str, shape: dict) -> dict:
    bw = copy_bandwidth(args.device)
    eng = engine(args, model_dir)
    n = args.decode_tokens
    eng.add_request("warm", list(range(3, 35)), params(8))
    run_to_end(eng)
    eng.add_request("r", list(range(3, 35)), params(n + 1))
    eng.step()  # prefill + first token
    took = timed(lambda: run_to_end(eng))
    graph_steps = eng.stats().num_graph_steps
    del eng
    gc.collect()
    per_token = took / n
    floor = weight_bytes(shape, read_per_token=True) / bw
    return dict(tokens_per_s=n / took, ms_per_token=per_token * 1e3, copy_bandwidth_gb_s=bw / 1e9,
                roofline_ms_per_token=floor * 1e3, roofline_fraction=floor / per_token, graph_steps=graph_steps)


def sharegpt_workload(n: int, mean_in: int, mean_out: int, vocab: int, seed: int = 0) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)

    def length(mean: int) -> int:  # log-normal with sigma 0.8, mean `mean`, clipped to [4, 4 * mean]
        return max(4, min(4 * mean, int(rng.lognormvariate(np.log(mean) - 0.32, 0.8))))

    return [([rng.randrange(3, vocab) for _ in range(length(mean_in))], length(mean_out)) for _ in range(n)]


def bench_offline(args, model_dir: str, shape: dict) -> dict:
    work = sharegpt_workload(args.num_requests, args.mean_input, args.mean_output, shape["vocab"])
    n_in, n_out = sum(len(p) for p, _ in work), sum(o for _, o in work)
    eng = engine(args, model_dir)
    eng.add_request("warm", [5] * 16, params(4))
    run_to_end(eng)
    t = time.perf_counter()
    for i, (prompt, out) in enumerate(work):
        eng.add_request(f"r{i}", prompt, params(out))
    steps = run_to_end(eng)
    ours = time.perf_counter() - t
    stats = eng.stats()
    del eng
    gc.collect()
    res = dict(requests=len(work), input_tokens=n_in, output_tokens=n_out, elapsed_s=ours,
               requests_per_s=len(work) / ours, output_tokens_per_s=n_out / ours,
               total_tokens_per_s=(n_in + n_out) / ours, steps=steps, preemptions=stats.num_preemptions,
               graph_steps=stats.num_graph_steps)
    if args.hf:
        hf_s, hf_batch = bench_hf(args, model_dir, work)
        res.update(hf_elapsed_s=hf_s, hf_batch_size=hf_batch, hf_requests_per_s=len(work) / hf_s,
                   speedup_vs_hf=hf_s / ours)
    return res


def bench_hf(args, model_dir: str, work) -> tuple[float, int]:
    """transformers generate over the workload in static batches (best of --hf-batch-sizes)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    dev = "cuda" if args.device != "cpu" else "cpu"
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(dev).eval()
    model.generation_config.eos_token_id = None

    def run(batch_size: int) -> float:
        t = time.perf_counter()
        for start in range(0, len(work), batch_size):
            batch = work[start:start + batch_size]
            width = max(len(p) for p, _ in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, (p, _) in enumerate(batch):
                ids[i, width - len(p):] = torch.tensor(p)
                mask[i, width - len(p):] = 1
            new = max(o for _, o in batch)
            with torch.inference_mode():
                model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=new,
                               min_new_tokens=new, do_sample=False, pad_token_id=0)
        if dev == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    results = {bs: run(bs) for bs in args.hf_batch_sizes}
    del model
    gc.collect()
    if dev == "cuda":
        torch.cuda.empty_cache()
    best = min(results, key=results.get)
    return results[best], best


def bench_graphs(args, model_dir: str, shape: dict) -> dict:
    out = {}
    for mode, eager in (("graphs", False), ("eager", True)):
        eng = engine(args, model_dir, enforce_eager=eager)
        for batch in args.graph_batches:
            ids = {f"{mode}{batch}-{i}" for i in range(batch)}
            for i, rid in enumerate(sorted(ids)):
                eng.add_request(rid, [3 + (i % 100)] * 16, params(args.graph_steps + 16))
            started: set[str] = set()
            while started != ids:  # prefill: every request gets its first token
                started |= {o.request_id for o in eng.step() if o.new_token_ids}
            before = eng.stats().num_graph_steps
            took = timed(lambda: [eng.step() for _ in range(args.graph_steps)])
            out[f"{mode}_b{batch}_ms_per_step"] = took / args.graph_steps * 1e3
            out[f"{mode}_b{batch}_graph_steps"] = eng.stats().num_graph_steps - before
            run_to_end(eng)
        del eng
        gc.collect()
    for batch in args.graph_batches:
        out[f"speedup_b{batch}"] = out[f"eager_b{batch}_ms_per_step"] / out[f"graphs_b{batch}_ms_per_step"]
    return out


STARTUP_SCRIPT = """
import time, sys
t0 = time.perf_counter()
from pagedllm import _core
c = _core.EngineConfig()
c.model, c.device, c.dtype, c.max_model_len = sys.argv[1], sys.argv[2], "bfloat16", int(sys.argv[3])
c.gpu_memory_utilization = float(sys.argv[4])
c.log_stats = True
e = _core.Engine(c)
print("READY", time.perf_counter() - t0, flush=True)
"""


def bench_startup(args, model_dir: str, shape: dict) -> dict:
    res = {}
    for attempt in range(2):  # the first run warms the page cache
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, model_dir, args.device, str(args.max_model_len),
                            str(args.gpu_memory_utilization)], capture_output=True, text=True)
        wall = time.perf_counter() - t
        assert r.returncode == 0, r.stderr[-3000:]
    ready = float(re.search(r"READY ([0-9.]+)", r.stdout).group(1))
    m = re.search(r"start-up ([0-9.]+) s: (.*)", r.stderr)
    res.update(process_wall_s=wall, import_to_ready_s=ready, engine_startup_s=float(m.group(1)) if m else None)
    for name, sec in re.findall(r"([a-zA-Z ]+?) ([0-9.]+) s", m.group(2) if m else ""):
        res[f"phase_{name.strip().replace(' ', '_')}_s"] = float(sec)
    res["log"] = [ln for ln in r.stderr.splitlines() if ln.startswith("pagedllm:")]
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model and a small workload (smoke test)")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/pagedllm/bench-models"))
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--num-threads", type=int, default=2, help="CPU device only")
    p.add_argument("--decode-tokens", type=int, default=256)
    p.add_argument("--num-requests", type=int, default=500)
    p.add_argument("--mean-input", type=int, default=200)
    p.add_argument("--mean-output", type=int, default=180)
    p.add_argument("--no-hf", dest="hf", action="store_false", help="skip the transformers comparison")
    p.add_argument("--hf-batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128])
    p.add_argument("--graph-batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 32, 256])
    p.add_argument("--graph-steps", type=int, default=32)
    p.add_argument("--out", default="")
    args = p.parse_args()
    if args.tiny:
        args.max_model_len = min(args.max_model_len, 512)
        args.decode_tokens, args.num_requests, args.mean_input, args.mean_output = 16, 12, 20, 12
        args.hf_batch_sizes, args.graph_batches, args.graph_steps = [8], [1, 4], 4
    shape_name = "tiny" if args.tiny else "8b"
    shape = SHAPES[shape_name]
    t = time.perf_counter()
    model_dir = build_checkpoint(args.cache_dir, shape_name)
    results = dict(device=args.device, shape=shape_name, checkpoint=model_dir, weight_gb=weight_bytes(shape) / 1e9,
                   checkpoint_ready_s=time.perf_counter() - t)
    for section in args.sections.split(","):
        fn = {"decode": bench_decode, "offline": bench_offline, "graphs": bench_graphs, "startup": bench_startup}[section]
        results[section] = fn(args, model_dir, shape)
        print(f"== {section}: " + json.dumps(results[section], indent=1), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
