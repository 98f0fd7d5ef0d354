#!/usr/bin/env python3
"""Offline throughput: pagedllm vs Hugging Face transformers `generate` on the same checkpoint.

A seeded synthetic workload of token-id prompts, outputs forced to their length (ignore_eos):
  fixed: N prompts x input_len tokens, each generating output_len tokens;
  mixed: N prompts with input and output lengths uniform in [1, 2 * len - 1] (same means).
pagedllm runs the whole workload with LLM.generate (continuous batching). transformers runs it
the usual way: static batches in workload order, left padding, greedy `generate`, every batch
generating the longest output it contains, tried at several batch sizes (best one reported).
Each engine runs in its own subprocess so peak memory (RSS high-water mark) is its own.

The checkpoint is a random-weight Llama (default ~25M parameters: 6 layers, hidden 512, 8 heads,
2 KV heads, intermediate 1408, vocab 8192) written once with transformers into --cache-dir.

  python benchmarks/throughput.py                          # fixed 32 x 128 x 128, fp32
  python benchmarks/throughput.py --dtype bfloat16
  python benchmarks/throughput.py --workload mixed --num-prompts 64
  python benchmarks/throughput.py --skip-hf --num-prompts 8 --input-len 16 --output-len 16
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)


# ---------------------------------------------------------------------------------------------
# Workload and checkpoint (parent process)


def make_workload(kind: str, num_prompts: int, input_len: int, output_len: int, vocab: int, seed: int):
    rng = random.Random(seed)
    requests = []
    for _ in range(num_prompts):
        if kind == "fixed":
            n_in, n_out = input_len, output_len
        else:
            n_in = rng.randint(1, 2 * input_len - 1)
            n_out = rng.randint(1, 2 * output_len - 1)
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


# ---------------------------------------------------------------------------------------------
# Workers (subprocesses)


def peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0


def worker_pagedllm(model_dir: str, workload: list, dtype: str, threads: int, repeat: int) -> dict:
    from pagedllm import LLM, SamplingParams

    t0 = time.perf_counter()
    max_len = max(len(r["prompt"]) + r["output_len"] for r in workload)
    llm = LLM(model_dir, dtype=dtype, num_threads=threads, max_model_len=max(max_len, 64), seed=0,
              log_stats=False)
    load_s = time.perf_counter() - t0
    warm = [{"prompt_token_ids": workload[0]["prompt"][:8]}]
    llm.generate(warm, SamplingParams(temperature=0, max_tokens=4, ignore_eos=True), use_tqdm=False)
    prompts = [{"prompt_token_ids": r["prompt"]} for r in workload]
    params = [SamplingParams(temperature=0, max_tokens=r["output_len"], ignore_eos=True) for r in workload]
    elapsed = float("inf")
    for _ in range(repeat):  # best of `repeat` (other load on the machine only slows a run down)
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        elapsed = min(elapsed, time.perf_counter() - t0)
    out_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    expected = sum(r["output_len"] for r in workload)
    assert out_tokens == expected, f"pagedllm generated {out_tokens} tokens, expected {expected}"
    return {"engine": "pagedllm", "elapsed_s": elapsed, "load_s": load_s, "output_tokens": out_tokens,
            "peak_rss_mib": peak_rss_mib()}


def worker_hf(model_dir: str, workload: list, dtype: str, threads: int, batch_sizes: list[int],
              repeat: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    load_s = time.perf_counter() - t0

    def run(batch_size: int, give_up_after: float) -> int | None:
        """Output tokens produced; None once slower than give_up_after seconds."""
        produced = 0
        t_start = time.perf_counter()
        for start in range(0, len(workload), batch_size):
            if time.perf_counter() - t_start > give_up_after:
                return None
            batch = workload[start:start + batch_size]
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
            texts = [out[i, width:width + r["output_len"]].tolist() for i, r in enumerate(batch)]
            tok.batch_decode(texts, skip_special_tokens=True)
            produced += sum(r["output_len"] for r in batch)
        return produced

    with torch.inference_mode():  # warm-up
        model.generate(input_ids=torch.tensor([workload[0]["prompt"][:8]]), max_new_tokens=4, min_new_tokens=4,
                       do_sample=False, pad_token_id=0)
    # Largest batch first; a smaller batch size is abandoned once it is slower than the best so
    # far (it cannot win), which keeps batch size 1 from dominating the run time.
    per_batch: dict[int, float | None] = {}
    best_s = float("inf")
    produced = 0
    for bs in sorted(batch_sizes, reverse=True):
        per_batch[bs] = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            n = run(bs, best_s)
            if n is None:
                break
            took = time.perf_counter() - t0
            per_batch[bs] = took if per_batch[bs] is None else min(per_batch[bs], took)
            if took < best_s:
                best_s, produced = took, n
    best = min((k for k in per_batch if per_batch[k] is not None), key=per_batch.get)
    return {"engine": f"hf (batch {best})", "elapsed_s": per_batch[best], "load_s": load_s, "output_tokens": produced,
            "peak_rss_mib": peak_rss_mib(), "per_batch_size_s": {str(k): v for k, v in per_batch.items()}}


# ---------------------------------------------------------------------------------------------
# Parent


def spawn(args, engine: str, model_dir: str, workload_file: str) -> dict:
    cmd = [sys.executable, HERE, "--_worker", engine, "--_model-dir", model_dir, "--_workload", workload_file,
           "--dtype", args.dtype, "--num-threads", str(args.num_threads), "--hf-batch-sizes", args.hf_batch_sizes,
           "--repeat", str(args.repeat)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"{engine} worker failed (exit {r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["fixed", "mixed"], default="fixed")
    p.add_argument("--num-prompts", type=int, default=32)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--hf-batch-sizes", default="1,8,32", help="comma-separated static batch sizes to try")
    p.add_argument("--skip-hf", action="store_true", help="run only pagedllm")
    p.add_argument("--repeat", type=int, default=1, help="time each run this many times, report the best")
    p.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "pagedllm-bench"))
    p.add_argument("--model-dir", help="use this checkpoint instead of building the random Llama")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    p.add_argument("--_model-dir", help=argparse.SUPPRESS)
    p.add_argument("--_workload", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._worker:
        with open(args._workload) as f:
            workload = json.load(f)
        if args._worker == "pagedllm":
            res = worker_pagedllm(args._model_dir, workload, args.dtype, args.num_threads, args.repeat)
        else:
            sizes = [int(x) for x in args.hf_batch_sizes.split(",") if x.strip()]
            res = worker_hf(args._model_dir, workload, args.dtype, args.num_threads, sizes, args.repeat)
        print(json.dumps(res))
        return

    os.makedirs(args.cache_dir, exist_ok=True)
    model_dir = args.model_dir or build_checkpoint(args)
    with open(os.path.join(model_dir, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    workload = make_workload(args.workload, args.num_prompts, args.input_len, args.output_len, vocab, args.seed)
    n_in = sum(len(r["prompt"]) for r in workload)
    n_out = sum(r["output_len"] for r in workload)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(workload, f)
        workload_file = f.name
    print(f"model {model_dir} ({args.dtype}), workload {args.workload}: {len(workload)} requests, "
          f"{n_in} prompt tokens, {n_out} output tokens, {args.num_threads} threads, best of {args.repeat}, "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)
    try:
        results = [spawn(args, "pagedllm", model_dir, workload_file)]
        if not args.skip_hf:
            results.append(spawn(args, "hf", model_dir, workload_file))
    finally:
        os.unlink(workload_file)

    header = f"{'engine':<18}{'req/s':>9}{'out tok/s':>12}{'total tok/s':>13}{'peak RSS MiB':>14}{'time s':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        s = r["elapsed_s"]
        r.update(requests_per_s=len(workload) / s, output_tokens_per_s=n_out / s, total_tokens_per_s=(n_in + n_out) / s)
        print(f"{r['engine']:<18}{r['requests_per_s']:>9.2f}{r['output_tokens_per_s']:>12.1f}"
              f"{r['total_tokens_per_s']:>13.1f}{r['peak_rss_mib']:>14.0f}{s:>9.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if len(results) == 2:
        ratio = results[0]["output_tokens_per_s"] / results[1]["output_tokens_per_s"]
        print(f"pagedllm / hf throughput ratio: {ratio:.2f}x")
        if "per_batch_size_s" in results[1]:
            tried = ", ".join(f"batch {k}: " + (f"{v:.2f} s" if v is not None else "slower, abandoned")
                              for k, v in results[1]["per_batch_size_s"].items())
            print(f"hf static batch sizes tried: {tried}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": results}, f,
                      indent=2)


if __name__ == "__main__":
    main()
