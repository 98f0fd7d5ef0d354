#!/usr/bin/env python3
"""llama.cpp's continuous batching, driven through llama-cpp-python's low-level API.

The same loop as llama.cpp's own server and `llama-batched`: up to `n_parallel` sequences are
active at once, each with its own sequence id in ONE shared context; every `llama_decode` call
carries one batch with the next token of every decoding sequence plus prompt chunks of newly
admitted sequences (up to `n_batch` tokens in all: chunked prefill); a finished sequence's KV
cells are freed (`llama_memory_seq_rm`) and the next waiting request takes its slot. Sampling is
greedy (argmax over the logits rows of one `llama_get_logits` call) and outputs are forced to
their length (EOS ignored), as in the other engines of the benchmark.

  python benchmarks/llamacpp_batched.py MODEL.gguf --check   # batched == one-at-a-time greedy
"""

from __future__ import annotations

import argparse
import time
from collections import deque

import numpy as np

KV_TYPES = {"f32": 0, "f16": 1, "bf16": 30}  # ggml_type values (ggml.h)


class LlamaCppBatched:
    """One llama.cpp model + context sized for `n_parallel` sequences of up to `max_seq_len`
    tokens each.

    kv_unified: one KV buffer shared by all sequences (every token attends over the cells in
    use, masked) vs one stream per sequence (n_ctx / n_parallel cells each; attention per stream).
    """

    def __init__(self, gguf_path: str, n_parallel: int, max_seq_len: int, threads: int, n_batch: int = 512,
                 n_ubatch: int = 512, kv_type: str = "f16", flash_attn: str = "auto",
                 kv_unified: bool = False) -> None:
        import llama_cpp as lc

        from gguf_convert import quiet_llamacpp

        self.lc = lc
        quiet_llamacpp()
        lc.llama_backend_init()
        self.model = lc.llama_model_load_from_file(gguf_path.encode(), lc.llama_model_default_params())
        assert self.model, f"llama.cpp could not load {gguf_path}"
        per_seq = -(-max_seq_len // 256) * 256
        cp = lc.llama_context_default_params()
        cp.n_seq_max = n_parallel
        cp.n_ctx = per_seq * n_parallel
        cp.n_batch, cp.n_ubatch = n_batch, min(n_ubatch, n_batch)
        cp.n_threads = cp.n_threads_batch = threads
        cp.type_k = cp.type_v = KV_TYPES[kv_type]
        cp.flash_attn_type = {"auto": lc.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": lc.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                              "off": lc.LLAMA_FLASH_ATTN_TYPE_DISABLED}[flash_attn]
        cp.kv_unified = kv_unified
        cp.no_perf = False
        self.ctx = lc.llama_init_from_model(self.model, cp)
        assert self.ctx, "llama.cpp could not create the context"
        self.mem = lc.llama_get_memory(self.ctx)
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.n_parallel, self.n_batch = n_parallel, n_batch
        self.batch = lc.llama_batch_init(n_batch, 0, 1)
        b = self.batch
        self._tok = np.ctypeslib.as_array(b.token, shape=(n_batch,))   # [n_batch] int32
        self._pos = np.ctypeslib.as_array(b.pos, shape=(n_batch,))     # [n_batch] int32
        self._nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(n_batch,))
        self._nseq[:] = 1
        self._out = np.ctypeslib.as_array(b.logits, shape=(n_batch,))  # [n_batch] int8 flags
        self._seq = [np.ctypeslib.as_array(b.seq_id[i], shape=(1,)) for i in range(n_batch)]

    def _decode(self, n: int, n_outputs: int) -> np.ndarray:
        """Decodes the first n batch entries; returns the argmax of each output row."""
        self.batch.n_tokens = n
        rc = self.lc.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} (KV cache full?)")
        logits = np.ctypeslib.as_array(self.lc.llama_get_logits(self.ctx), shape=(n_outputs, self.n_vocab))
        return logits.argmax(axis=1)

    def generate(self, requests: list[dict], on_first_token=None) -> list[list[int]]:
        """requests: [{"prompt": [ids], "output_len": n}]; greedy outputs forced to length, in
        request order. on_first_token(i) is called when request i gets its first token."""
        clear = self.lc.llama_memory_clear
        clear(self.mem, True)
        pending = deque(range(len(requests)))
        free = list(range(self.n_parallel - 1, -1, -1))
        active: dict[int, dict] = {}  # seq id -> state; insertion order = admission order
        outputs: list[list[int]] = [[] for _ in requests]
        while pending or active:
            while pending and free:
                active[free.pop()] = {"req": pending.popleft(), "done": 0}  # done: prompt tokens fed
            n, rows = 0, []
            for sid, st in active.items():  # decode tokens first, as llama.cpp's server does
                out = outputs[st["req"]]
                if out:
                    self._tok[n], self._pos[n], self._out[n] = out[-1], st["done"] + len(out) - 1, 1
                    self._seq[n][0] = sid
                    rows.append(sid)
                    n += 1
            for sid, st in active.items():  # then prompt chunks in the remaining budget
                if n >= self.n_batch:
                    break
                prompt = requests[st["req"]]["prompt"]
                if st["done"] == len(prompt):
                    continue
                take = min(len(prompt) - st["done"], self.n_batch - n)
                self._tok[n:n + take] = prompt[st["done"]:st["done"] + take]
                self._pos[n:n + take] = np.arange(st["done"], st["done"] + take)
                self._out[n:n + take] = 0
                for i in range(n, n + take):
                    self._seq[i][0] = sid
                st["done"] += take
                n += take
                if st["done"] == len(prompt):
                    self._out[n - 1] = 1
                    rows.append(sid)
            next_tokens = self._decode(n, len(rows))
            for sid, tok in zip(rows, next_tokens.tolist()):
                st = active[sid]
                out = outputs[st["req"]]
                out.append(tok)
                if len(out) == 1 and on_first_token is not None:
                    on_first_token(st["req"])
                if len(out) >= requests[st["req"]]["output_len"]:
                    self.lc.llama_memory_seq_rm(self.mem, sid, -1, -1)
                    del active[sid]
                    free.append(sid)
        return outputs

    def close(self) -> None:
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gguf")
    p.add_argument("--check", action="store_true", help="batched outputs == one sequence at a time (F32 KV)")
    p.add_argument("--num-prompts", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    reqs = [{"prompt": rng.integers(3, 256, int(rng.integers(8, 200))).tolist(), "output_len": int(rng.integers(4, 40))}
            for _ in range(args.num_prompts)]
    max_len = max(len(r["prompt"]) + r["output_len"] for r in reqs)
    t0 = time.perf_counter()
    eng = LlamaCppBatched(args.gguf, 4, max_len, args.threads, n_batch=128, kv_type="f32", flash_attn="off")
    batched = eng.generate(reqs)
    eng.close()
    t1 = time.perf_counter()
    one = LlamaCppBatched(args.gguf, 1, max_len, args.threads, n_batch=128, kv_type="f32", flash_attn="off")
    single = [one.generate([r])[0] for r in reqs]
    one.close()
    same = sum(a == b for a, b in zip(batched, single))
    print(f"{same}/{len(reqs)} requests identical batched (4 parallel, 128-token batches) vs alone "
          f"({t1 - t0:.2f} s batched)")
    raise SystemExit(0 if same == len(reqs) else 1)


if __name__ == "__main__":
    main()
