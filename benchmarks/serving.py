#!/usr/bin/env python3
"""Online serving benchmark against an OpenAI-compatible server (pagedllm serve, or any other).

Like vLLM's `bench serve`: a seeded random dataset (--random-input-len / --random-output-len,
lengths varied by --random-range-ratio) sent as streaming requests at a Poisson --request-rate
(or all at once: inf), optionally capped at --max-concurrency in flight. Outputs are forced to
their length (ignore_eos). Prompts are token-id lists drawn from the server's own tokenization of
a seeded random text, so they are valid for any model (chat prompts are their detokenized text).

Per request: TTFT (send to first content chunk), TPOT ((latency - TTFT) / (output tokens - 1)),
ITL (gaps between content chunks), E2EL; reported as mean / median / p99, with request and token
throughput and errors; engine steps, tokens per step and preemptions from pagedllm's /metrics.
--offline-baseline runs the same workload through LLM.generate afterwards (same engine flags as
--server-args) and reports server vs offline throughput and time per engine step.

  python benchmarks/serving.py --launch --model-path demo --num-prompts 200 --request-rate 20
  python benchmarks/serving.py --base-url http://127.0.0.1:8000 --max-concurrency 64
  python benchmarks/serving.py --launch --max-concurrency 256 --num-prompts 512 --offline-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

WORDS = ("the of and to in is was for on are with as be at by this had not but from or have an "
         "they which one you were all her she there would their we him been has when who will "
         "more no if out so said what up its about into than them can only other new some could "
         "time these two may then do first any my now such like our over man me even most").split()


@dataclass
class Result:
    ok: bool = False
    error: str = ""
    prompt_len: int = 0
    output_tokens: int = 0
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)


def build_dataset(http: httpx.Client, base: str, args: argparse.Namespace
                  ) -> list[tuple[list[int], int]]:
    """``num_prompts`` (prompt token ids, output length) pairs, seeded."""
    rng = random.Random(args.seed)
    text = " ".join(rng.choice(WORDS) for _ in range(max(2000, args.random_input_len * 4)))
    r = http.post(f"{base}/tokenize", json={"prompt": text, "add_special_tokens": False},
                  headers=_headers(args))
    r.raise_for_status()
    pool = r.json()["tokens"]
    low = max(1.0 - args.random_range_ratio, 0.0)
    high = 1.0 + args.random_range_ratio
    dataset = []
    for _ in range(args.num_prompts):
        input_len = max(1, int(args.random_input_len * rng.uniform(low, high)))
        output_len = max(1, int(args.random_output_len * rng.uniform(low, high)))
        start = rng.randrange(0, max(1, len(pool) - input_len))
        ids = (pool[start:] + pool)[:input_len]
        dataset.append((ids, output_len))
    return dataset


def _headers(args: argparse.Namespace) -> dict[str, str]:
    return {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}


async def _post_stream(url: str, body: bytes, headers: dict[str, str]
                       ) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST over a fresh connection; returns the status and the open stream after the
    response headers. A minimal HTTP/1.1 client: httpx costs the client more CPU per event
    than the server spends producing it, which on a small machine measures the client."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=ssl.create_default_context() if secure else None,
        limit=2**22)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    status = int((await reader.readline()).split()[1])
    chunked = False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if not chunked:
        raise ValueError("expected a chunked event stream")
    return status, reader, writer


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


async def one_request(base: str, args: argparse.Namespace, prompt: list[int] | str,
                      output_len: int, prompt_len: int) -> Result:
    result = Result(prompt_len=prompt_len)
    body: dict = {"model": args.model, "max_tokens": output_len, "ignore_eos": True,
                  "temperature": args.temperature, "stream": True,
                  "stream_options": {"include_usage": True}}
    if args.endpoint == "chat":
        url = f"{base}/v1/chat/completions"
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        url = f"{base}/v1/completions"
        body["prompt"] = prompt
    start = time.perf_counter()
    last = start
    writer = None
    try:
        status, reader, writer = await _post_stream(url, json.dumps(body).encode(),
                                                    _headers(args))
        buffer = b""
        async for data in _chunks(reader):
            if status != 200:
                result.error = f"HTTP {status}: {data[:200]!r}"
                return result
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if not event.startswith(b"data: ") or event == b"data: [DONE]":
                    continue
                chunk = json.loads(event[6:])
                if "error" in chunk:
                    result.error = chunk["error"].get("message", "error event")
                    return result
                if chunk.get("usage"):
                    result.output_tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk.get("choices", []):
                    text = choice.get("text") or (choice.get("delta") or {}).get("content")
                    if text:
                        now = time.perf_counter()
                        if result.ttft == 0.0:
                            result.ttft = now - start
                        else:
                            result.itl.append(now - last)
                        last = now
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if writer is not None:
            writer.close()
    result.latency = time.perf_counter() - start
    result.ok = result.output_tokens > 0
    if not result.ok:
        result.error = "no usage or no output"
    return result


async def run_load(base: str, args: argparse.Namespace, prompts: list,
                   dataset: list[tuple[list[int], int]]) -> tuple[list[Result], float]:
    rng = random.Random(args.seed + 1)
    semaphore = asyncio.Semaphore(args.max_concurrency or len(dataset))

    async def limited(prompt: list[int] | str, output_len: int, prompt_len: int) -> Result:
        async with semaphore:
            return await one_request(base, args, prompt, output_len, prompt_len)

    tasks = []
    start = time.perf_counter()
    for prompt, (ids, output_len) in zip(prompts, dataset):
        tasks.append(asyncio.create_task(limited(prompt, output_len, len(ids))))
        if args.request_rate != float("inf"):
            await asyncio.sleep(rng.expovariate(args.request_rate))
    results = await asyncio.gather(*tasks)
    return results, time.perf_counter() - start


def _stats(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return 0.0, 0.0, 0.0
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.fmean(values), statistics.median(values), p99


def _engine_counters(http: httpx.Client, base: str, args: argparse.Namespace) -> dict:
    try:
        text = http.get(f"{base}/metrics", headers=_headers(args)).text
    except httpx.HTTPError:
        return {}
    names = ("engine_steps_total", "generation_tokens_total", "num_preemptions_total")
    return {name: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            for name in names if line.startswith(f"pagedllm:{name}")}


def report(results: list[Result], duration: float, before: dict, after: dict,
           args: argparse.Namespace) -> dict:
    ok = [r for r in results if r.ok]
    errors = [r for r in results if not r.ok]
    input_tokens = sum(r.prompt_len for r in ok)
    output_tokens = sum(r.output_tokens for r in ok)
    ttft = [r.ttft * 1000 for r in ok]
    tpot = [(r.latency - r.ttft) / (r.output_tokens - 1) * 1000 for r in ok
            if r.output_tokens > 1]
    itl = [gap * 1000 for r in ok for gap in r.itl]
    e2el = [r.latency * 1000 for r in ok]
    summary = {
        "successful_requests": len(ok), "errors": len(errors), "duration_s": duration,
        "request_throughput": len(ok) / duration,
        "output_throughput": output_tokens / duration,
        "total_token_throughput": (input_tokens + output_tokens) / duration,
        "total_input_tokens": input_tokens, "total_output_tokens": output_tokens,
    }
    for name, values in (("ttft_ms", ttft), ("tpot_ms", tpot), ("itl_ms", itl),
                         ("e2el_ms", e2el)):
        mean, median, p99 = _stats(values)
        summary.update({f"mean_{name}": mean, f"median_{name}": median, f"p99_{name}": p99})
    if before and after:
        steps = after["engine_steps_total"] - before["engine_steps_total"]
        generated = after["generation_tokens_total"] - before["generation_tokens_total"]
        summary.update({"engine_steps": steps,
                        "engine_steps_per_s": steps / duration,
                        "generated_tokens_per_step": generated / steps if steps else 0.0,
                        "preemptions": after["num_preemptions_total"]
                        - before["num_preemptions_total"]})
    rate = "inf" if args.request_rate == float("inf") else f"{args.request_rate:g}"
    print(f"{'=' * 16} Serving Benchmark Result {'=' * 16}")
    print(f"{'Endpoint / request rate / max concurrency:':<44}{args.endpoint} / {rate} / "
          f"{args.max_concurrency or 'none'}")
    for label, value in (("Successful requests:", len(ok)), ("Errors:", len(errors)),
                         *((f"  error: {r.error}", "") for r in errors[:5]),
                         ("Benchmark duration (s):", f"{duration:.2f}"),
                         ("Total input tokens:", input_tokens),
                         ("Total generated tokens:", output_tokens),
                         ("Request throughput (req/s):", f"{summary['request_throughput']:.2f}"),
                         ("Output token throughput (tok/s):",
                          f"{summary['output_throughput']:.2f}"),
                         ("Total token throughput (tok/s):",
                          f"{summary['total_token_throughput']:.2f}")):
        print(f"{label:<44}{value}")
    for title, name in (("Time to First Token", "ttft_ms"), ("Time per Output Token (excl. "
                        "1st token)", "tpot_ms"), ("Inter-token Latency", "itl_ms"),
                        ("End-to-end Latency", "e2el_ms")):
        print(f"{'-' * 14}{title}{'-' * max(2, 44 - len(title))}")
        for kind in ("mean", "median", "p99"):
            label = f"{kind.capitalize() if kind != 'p99' else 'P99'} {name[:-3].upper()} (ms):"
            print(f"{label:<44}{summary[f'{kind}_{name}']:.2f}")
    if "engine_steps" in summary:
        print(f"{'-' * 14}Engine (from /metrics){'-' * 24}")
        print(f"{'Engine steps (steps/s):':<44}{summary['engine_steps']:.0f} "
              f"({summary['engine_steps_per_s']:.1f})")
        print(f"{'Generated tokens per step:':<44}{summary['generated_tokens_per_step']:.1f}")
        print(f"{'Preemptions:':<44}{summary['preemptions']:.0f}")
    print("=" * 58)
    return summary


def offline_baseline(args: argparse.Namespace, dataset: list[tuple[list[int], int]],
                     served: dict) -> dict:
    """The same workload through LLM.generate with the server's engine flags."""
    from pagedllm import LLM, SamplingParams
    from pagedllm.cli import build_parser
    from pagedllm.engine_args import EngineArgs

    parsed = build_parser().parse_args(["serve", "--model", args.model_path,
                                        *shlex.split(args.server_args)])
    llm = LLM(**vars(EngineArgs.from_cli_args(parsed)))
    prompts = [{"prompt_token_ids": ids} for ids, _ in dataset]
    params = [SamplingParams(max_tokens=n, ignore_eos=True, temperature=args.temperature,
                             seed=i) for i, (_, n) in enumerate(dataset)]
    llm.generate(prompts[:4], params[:4], use_tqdm=False)
    steps_before = llm.llm_engine.get_stats()["num_steps"]
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    duration = time.perf_counter() - start
    steps = llm.llm_engine.get_stats()["num_steps"] - steps_before
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    result = {"offline_duration_s": duration, "offline_output_throughput": tokens / duration,
              "offline_engine_steps": steps, "offline_ms_per_step": duration / steps * 1000}
    print(f"{'-' * 14}Offline LLM.generate, same workload{'-' * 9}")
    print(f"{'Duration (s):':<44}{duration:.2f}")
    print(f"{'Output token throughput (tok/s):':<44}{result['offline_output_throughput']:.2f}")
    print(f"{'Engine steps / ms per step:':<44}{steps} / {result['offline_ms_per_step']:.2f}")
    if served.get("engine_steps"):
        served_ms = served["duration_s"] / served["engine_steps"] * 1000
        ratio = served["output_throughput"] / result["offline_output_throughput"]
        result.update({"served_ms_per_step": served_ms, "served_over_offline": ratio})
        print(f"{'Server ms per step (wall / steps):':<44}{served_ms:.2f}")
        print(f"{'Server / offline output throughput:':<44}{ratio:.2f}")
    print("=" * 58)
    return result


def launch_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "pagedllm", "serve", args.model_path, "--port",
               str(port), "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning",
               *shlex.split(args.server_args)]
    print("launching:", shlex.join(command), flush=True)
    proc = subprocess.Popen(command)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--launch", action="store_true",
                   help="start `pagedllm serve MODEL` on a free port for the run")
    p.add_argument("--server-args", default="",
                   help="extra flags for --launch and --offline-baseline")
    p.add_argument("--model-path", default="demo",
                   help="the model --launch and --offline-baseline load (default: demo)")
    p.add_argument("--model", help="model name in requests (default: the server's first)")
    p.add_argument("--offline-baseline", action="store_true",
                   help="also run the workload through LLM.generate and compare")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    p.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    p.add_argument("--num-prompts", type=int, default=200)
    p.add_argument("--random-input-len", type=int, default=128)
    p.add_argument("--random-output-len", type=int, default=64)
    p.add_argument("--random-range-ratio", type=float, default=0.0,
                   help="lengths uniform in [len*(1-r), len*(1+r)]")
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="Poisson arrivals per second (default: inf, all at once)")
    p.add_argument("--max-concurrency", type=int, default=None)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result-json", help="write the summary here")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    proc = None
    base = args.base_url.rstrip("/")
    if args.launch:
        proc, base = launch_server(args)
    try:
        with httpx.Client(timeout=60) as http:
            if args.model is None:
                models = http.get(f"{base}/v1/models", headers=_headers(args)).json()
                args.model = models["data"][0]["id"]
            dataset = build_dataset(http, base, args)
            prompts: list = [ids for ids, _ in dataset]
            if args.endpoint == "chat":
                prompts = [http.post(f"{base}/detokenize", json={"tokens": ids},
                                     headers=_headers(args)).json()["prompt"]
                           for ids, _ in dataset]
            before = _engine_counters(http, base, args)
            results, duration = asyncio.run(run_load(base, args, prompts, dataset))
            after = _engine_counters(http, base, args)
        summary = report(results, duration, before, after, args)
        if args.offline_baseline:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            summary.update(offline_baseline(args, dataset, summary))
        if args.result_json:
            with open(args.result_json, "w") as f:
                json.dump({"args": {k: v for k, v in vars(args).items() if k != "api_key"},
                           **summary}, f, indent=2, default=str)
        return 1 if summary["errors"] else 0
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    sys.exit(main())
