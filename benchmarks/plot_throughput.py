#!/usr/bin/env python3
"""Throughput vs number of concurrent sequences for pagedllm, llama.cpp and HF transformers.

For each concurrency c (--concurrency, default 1,4,16,64) a fixed workload of max(2c, 8)
requests x --input-len x --output-len runs through benchmarks/throughput.py's workers with
pagedllm max_num_seqs = c, llama.cpp n_parallel = c, HF static batch size = c (one subprocess
per engine and point; no single-stream/prefill extras). Writes a PNG and the numbers as JSON.

  python benchmarks/plot_throughput.py --dtype bfloat16 --num-threads 1 -o throughput_vs_concurrency.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import throughput  # noqa: E402

LABELS = {"pagedllm": "pagedllm", "llamacpp": "llama.cpp (llama-cpp-python)", "hf": "HF transformers generate"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="pagedllm,llamacpp,hf")
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--model", choices=sorted(throughput.PRESETS), default="small")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--num-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "pagedllm-bench"))
    p.add_argument("--core-dir", help="pagedllm package directory to import instead of the installed one")
    p.add_argument("-o", "--output", default="throughput_vs_concurrency.png")
    p.add_argument("--json", help="write the numbers here (default: the PNG path with .json)")
    p.add_argument("--from-json", help="only plot these numbers")
    args = p.parse_args()

    if args.from_json:
        with open(args.from_json) as f:
            data = json.load(f)
    else:
        data = measure(args)
        with open(args.json or os.path.splitext(args.output)[0] + ".json", "w") as f:
            json.dump(data, f, indent=2)
    plot(data, args.output)


def measure(args) -> dict:
    ns = argparse.Namespace(**vars(args), **throughput.PRESETS[args.model])
    os.makedirs(args.cache_dir, exist_ok=True)
    model_dir = throughput.build_checkpoint(ns)
    if "llamacpp" in args.engines:
        from gguf_convert import ensure_gguf

        ensure_gguf(model_dir)
    vocab = throughput.model_shape(model_dir)["vocab"]
    engines = args.engines.split(",")
    points: dict[str, list] = {e: [] for e in engines}
    for c in (int(x) for x in args.concurrency.split(",")):
        n = max(2 * c, 8)
        workload = throughput.make_workload("fixed", n, args.input_len, args.output_len, (1, 1), (1, 1), vocab, 0)
        run_args = argparse.Namespace(
            dtype=args.dtype, num_threads=args.num_threads, hf_batch_sizes=str(c), repeat=1, rounds=args.rounds,
            llamacpp_parallel=str(c), llamacpp_n_batch=512, llamacpp_kv_type="model", llamacpp_flash_attn="off",
            llamacpp_kv_unified=False, b1_output_len=0, gemm_size=0, max_num_seqs=c, core_dir=args.core_dir)
        runs, _ = throughput.run_all(run_args, model_dir, workload, {"b1_prompt": [], "prefill": []}, engines,
                                     log=lambda s, c=c: print(f"c={c}{s}", flush=True))
        n_out = n * args.output_len
        for e in engines:
            s = throughput.summarize(runs[e], n * args.input_len, n_out, 0, 0.0)
            points[e].append({"concurrency": c, "requests": n, "output_tokens_per_s": s["output_tokens_per_s"],
                              "output_tokens_per_cpu_s": s["output_tokens_per_cpu_s"], "elapsed_all_s": s["elapsed_all_s"]})
    return {"model": args.model, "dtype": args.dtype, "num_threads": args.num_threads, "input_len": args.input_len,
            "output_len": args.output_len, "points": points}


def plot(data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for engine, pts in data["points"].items():
        xs = [q["concurrency"] for q in pts]
        ax.plot(xs, [q["output_tokens_per_s"] for q in pts], marker="o", label=LABELS.get(engine, engine))
    ax.set_xscale("log", base=2)
    ax.set_xticks([q["concurrency"] for q in next(iter(data["points"].values()))])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("concurrent sequences (max_num_seqs / n_parallel / static batch)")
    ax.set_ylabel("output tokens/s")
    ax.set_title(f"{data['model']} Llama, {data['dtype']}, {data['num_threads']} thread(s), "
                 f"{data['input_len']} in / {data['output_len']} out")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
