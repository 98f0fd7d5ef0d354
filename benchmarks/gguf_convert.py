#!/usr/bin/env python3
"""Hugging Face Llama checkpoint (config.json + *.safetensors, F32 or BF16) -> GGUF for llama.cpp.

Written for the benchmark (benchmarks/throughput.py) against the GGUF format and tensor-naming
documentation, using only the `gguf` package's GGUFWriter (no code from llama.cpp's converter).
What it does:

- metadata: general.architecture "llama" and the llama.* hyper-parameters (context_length,
  embedding_length, block_count, feed_forward_length, attention.head_count(_kv),
  attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, key/value_length);
- tokenizer: a "llama" (sentencepiece-style) vocabulary that only has to load, since the
  benchmark feeds token ids: ids 0..255 are the byte tokens <0xNN> (the benchmark tokenizer is
  byte-level), the rest placeholder control tokens; bos/eos from config.json;
- tensors: HF names -> GGUF names (token_embd, blk.N.attn_norm, attn_q/k/v/output, ffn_norm,
  ffn_gate/up/down, output_norm, output), the 2-D weights kept in the checkpoint's dtype
  (F32 or BF16, bit-exact), the 1-D norm weights as F32 (exact for BF16);
- rope layout: HF Llama rotates the two halves of each head (x_i with x_{i+d/2}, "NeoX"
  style); GGUF's llama architecture rotates adjacent pairs (x_2i with x_2i+1). Both compute
  the same attention if the rows of W_q and W_k are reordered within each head so that output
  row 2i+j of the GGUF weight is HF row j*d/2 + i (see `rope_pairs_interleaved`).

  python benchmarks/gguf_convert.py MODEL_DIR [-o out.gguf]
  python benchmarks/gguf_convert.py MODEL_DIR --verify     # llama.cpp logits vs HF transformers
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys

import numpy as np

_ST_DTYPES = {"F32": np.float32, "BF16": np.uint16}  # BF16 kept as raw bits


def read_safetensors(model_dir: str) -> dict[str, tuple[str, tuple[int, ...], np.ndarray]]:
    """name -> (safetensors dtype, shape, array) over every *.safetensors file (mmapped).

    BF16 tensors come back as uint16 arrays of their raw bits. Raises ValueError for any other
    dtype or a malformed header.
    """
    out = {}
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    if not files:
        raise ValueError(f"no *.safetensors in {model_dir}")
    for name in files:
        buf = np.memmap(os.path.join(model_dir, name), dtype=np.uint8, mode="r")
        (hlen,) = struct.unpack("<Q", bytes(buf[:8]))
        header = json.loads(bytes(buf[8:8 + hlen]))
        base = 8 + hlen
        for key, info in header.items():
            if key == "__metadata__":
                continue
            if info["dtype"] not in _ST_DTYPES:
                raise ValueError(f"{key}: dtype {info['dtype']} not supported (F32, BF16)")
            begin, end = info["data_offsets"]
            arr = buf[base + begin:base + end].view(_ST_DTYPES[info["dtype"]]).reshape(info["shape"])
            out[key] = (info["dtype"], tuple(info["shape"]), arr)
    return out


def rope_pairs_interleaved(w: np.ndarray, num_heads: int) -> np.ndarray:
    """Reorders the rows of a [num_heads * head_dim, in] Q or K projection from HF's rotate-half
    rope layout to GGUF llama's adjacent-pair layout.

    Within a head of dimension d, HF pairs row i with row i + d/2 (i < d/2); GGUF llama pairs
    row 2i with row 2i + 1. New row 2i + j takes old row j * d/2 + i.
    """
    rows, cols = w.shape
    d = rows // num_heads
    assert d * num_heads == rows and d % 2 == 0, f"bad q/k shape {w.shape} for {num_heads} heads"
    # [head, j (half), i (index in half), in] -> [head, i, j, in]
    return np.ascontiguousarray(w.reshape(num_heads, 2, d // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols))


def rope_theta(cfg: dict) -> float:
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    kind = params.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if kind not in ("default", None):
        raise ValueError(f"rope type {kind!r} not supported by this converter (only default rope)")
    return float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))


def gguf_tensor_name(hf_name: str) -> str | None:
    """The GGUF name of an HF Llama tensor; None for tensors llama.cpp does not use."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    parts = hf_name.split(".")
    if len(parts) < 5 or parts[:2] != ["model", "layers"]:
        return None
    layer, rest = parts[2], ".".join(parts[3:])
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    if rest.endswith("rotary_emb.inv_freq"):
        return None
    if rest not in per_layer:
        raise ValueError(f"tensor {hf_name} not supported (Llama without biases only)")
    return f"blk.{layer}.{per_layer[rest]}"


def convert(model_dir: str, out_path: str) -> str:
    """Writes the GGUF file; returns out_path."""
    import gguf

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "llama":
        raise ValueError(f"model_type {cfg.get('model_type')!r}: only llama is supported")
    hidden, n_head = cfg["hidden_size"], cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or hidden // n_head
    vocab = cfg["vocab_size"]
    tensors = read_safetensors(model_dir)
    dtypes = {dt for dt, shape, _ in tensors.values() if len(shape) == 2}
    if len(dtypes) != 1:
        raise ValueError(f"mixed weight dtypes {dtypes}")
    st_dtype = dtypes.pop()

    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name(os.path.basename(os.path.normpath(model_dir)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if st_dtype == "BF16" else gguf.LlamaFileType.ALL_F32)
    w.add_context_length(cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(hidden)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_rope_freq_base(rope_theta(cfg))
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(vocab)

    # Tokenizer: ids 0..255 bytes, the rest placeholder control tokens (ids are fed directly).
    tokens = [f"<0x{i:02X}>".encode() for i in range(min(256, vocab))]
    tokens += [f"<|extra_{i}|>".encode() for i in range(len(tokens), vocab)]
    types = [gguf.TokenType.BYTE] * min(256, vocab) + [gguf.TokenType.CONTROL] * (vocab - min(256, vocab))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types)
    w.add_bos_token_id(int(cfg.get("bos_token_id") or 1))
    w.add_eos_token_id(int(cfg.get("eos_token_id") or 2))
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    tied = "lm_head.weight" not in tensors
    for hf_name in sorted(tensors, key=_tensor_order):
        dt, shape, arr = tensors[hf_name]
        name = gguf_tensor_name(hf_name)
        if name is None:
            continue
        if ".attn_q." in name:
            arr = rope_pairs_interleaved(arr, n_head)
        elif ".attn_k." in name:
            arr = rope_pairs_interleaved(arr, n_kv)
        if len(shape) == 1:  # norms: F32 (BF16 -> F32 is exact: the bits go to the high half)
            arr = _bf16_bits_to_f32(arr) if dt == "BF16" else np.asarray(arr, dtype=np.float32)
            w.add_tensor(name, np.ascontiguousarray(arr))
        elif dt == "BF16":
            w.add_tensor(name, np.ascontiguousarray(arr), raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(name, np.ascontiguousarray(arr))
    if tied:
        print("tied embeddings: llama.cpp uses token_embd for the output", file=sys.stderr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out_path


def _bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def _tensor_order(hf_name: str):
    parts = hf_name.split(".")
    if parts[:2] == ["model", "layers"]:
        return (1, int(parts[2]), hf_name)
    return (0 if "embed" in hf_name else 2, 0, hf_name)


def default_output(model_dir: str) -> str:
    return os.path.join(model_dir, "model.gguf")


def ensure_gguf(model_dir: str) -> str:
    """model_dir/model.gguf, converted on first use (written atomically)."""
    path = default_output(model_dir)
    if not os.path.exists(path):
        tmp = path + f".tmp{os.getpid()}"
        convert(model_dir, tmp)
        os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# Verification: llama.cpp (llama-cpp-python) vs HF transformers and pagedllm on the same prompt


_LOG_CALLBACK = None


def quiet_llamacpp():
    """Silences llama.cpp's logging (it prints every tensor and graph otherwise)."""
    global _LOG_CALLBACK
    import llama_cpp as lc

    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = lc.llama_log_callback(lambda level, text, user_data: None)
        lc.llama_log_set(_LOG_CALLBACK, None)


class LlamaCppSeq:
    """One llama.cpp context for a single sequence (exactness checks: F32 KV cache, and flash
    attention off by default, since llama.cpp's CPU flash attention rounds through fp16)."""

    def __init__(self, gguf_path: str, n_ctx: int = 512, kv_f32: bool = True, flash_attn: bool = False,
                 threads: int = 1) -> None:
        import llama_cpp as lc

        self.lc = lc
        quiet_llamacpp()
        lc.llama_backend_init()
        self.model = lc.llama_model_load_from_file(gguf_path.encode(), lc.llama_model_default_params())
        assert self.model, f"llama.cpp could not load {gguf_path}"
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = cparams.n_ubatch = n_ctx
        cparams.n_threads = cparams.n_threads_batch = threads
        if kv_f32:
            cparams.type_k = cparams.type_v = lc.GGML_TYPE_F32
        if not flash_attn:
            cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = lc.llama_init_from_model(self.model, cparams)
        assert self.ctx, "llama.cpp could not create a context"
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.batch = lc.llama_batch_init(n_ctx, 0, 1)
        self.pos = 0

    def decode(self, tokens: list[int], all_logits: bool) -> np.ndarray:
        """Appends tokens; returns [n, vocab] logits (every position, or only the last)."""
        b = self.batch
        for i, t in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i] = t, self.pos + i, 1
            b.seq_id[i][0] = 0
            b.logits[i] = all_logits or i == len(tokens) - 1
        b.n_tokens = len(tokens)
        rc = self.lc.llama_decode(self.ctx, b)
        assert rc == 0, f"llama_decode returned {rc}"
        self.pos += len(tokens)
        rows = len(tokens) if all_logits else 1
        return np.ctypeslib.as_array(self.lc.llama_get_logits(self.ctx), shape=(rows, self.n_vocab)).copy()

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        out = [int(self.decode(prompt, False)[-1].argmax())]
        while len(out) < n:
            out.append(int(self.decode([out[-1]], False)[-1].argmax()))
        return out

    def close(self) -> None:
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)


def llamacpp_logits(gguf_path: str, tokens: list[int], flash_attn: bool = False) -> np.ndarray:
    """[len(tokens), vocab] logits of every position from llama.cpp (F32 KV cache)."""
    seq = LlamaCppSeq(gguf_path, n_ctx=max(256, len(tokens) + 16), flash_attn=flash_attn)
    try:
        return seq.decode(tokens, True)
    finally:
        seq.close()


def hf_model(model_dir: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def verify(model_dir: str, gguf_path: str, num_tokens: int, steps: int, seed: int) -> bool:
    """Checks the conversion: llama.cpp's logits at every position of a random prompt against
    HF transformers' (fp32 compute on both sides; BF16 weights are exact in fp32), and the
    greedy continuations of llama.cpp, HF and pagedllm. True when they agree."""
    import torch

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    rng = np.random.default_rng(seed)
    tokens = [int(t) for t in rng.integers(3, cfg["vocab_size"], num_tokens)]
    model = hf_model(model_dir)
    with torch.inference_mode():
        ref = model(torch.tensor([tokens])).logits[0].float().numpy()
        hf_greedy = model.generate(torch.tensor([tokens]), max_new_tokens=steps, min_new_tokens=steps,
                                   do_sample=False, pad_token_id=0)[0, num_tokens:].tolist()
    scale = float(np.abs(ref).max())
    bf16 = "BF16" in {dt for dt, _, _ in read_safetensors(model_dir).values()}
    ok = True
    for flash in (False, True):
        got = llamacpp_logits(gguf_path, tokens, flash_attn=flash)
        rel = float(np.abs(got - ref).max()) / scale
        agree = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
        # fp32 matmuls and attention: ~1e-6; flash attention (fp16 inside) or bf16 dot
        # products (activations rounded to bf16): ~1e-3..1e-2. A wrong rope layout gives ~1e-1.
        bound = 3e-2 if bf16 else (1e-4 if not flash else 3e-3)
        print(f"llama.cpp (flash attention {'on' if flash else 'off'}, F32 KV) vs HF fp32, {num_tokens} positions: "
              f"max |diff| / max |HF| = {rel:.2e} (bound {bound:.0e}), argmax agreement {agree:.3f}")
        ok &= rel < bound
    seq = LlamaCppSeq(gguf_path, n_ctx=num_tokens + steps + 16)
    lcpp_greedy = seq.greedy(tokens, steps)
    seq.close()
    ours = None
    try:
        from pagedllm import LLM, SamplingParams

        llm = LLM(model_dir, dtype="float32", num_threads=1, max_model_len=num_tokens + steps + 16, log_stats=False)
        ours = llm.generate([{"prompt_token_ids": tokens}], SamplingParams(temperature=0, max_tokens=steps,
                                                                           ignore_eos=True),
                            use_tqdm=False)[0].outputs[0].token_ids
        ours = list(ours)
    except ImportError:
        pass

    def same_prefix(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    print(f"greedy {steps} steps: llama.cpp == HF for the first {same_prefix(lcpp_greedy, hf_greedy)}"
          + (f", llama.cpp == pagedllm for the first {same_prefix(lcpp_greedy, ours)}"
             f", pagedllm == HF for the first {same_prefix(ours, hf_greedy)}" if ours is not None else ""))
    if not bf16:
        ok &= same_prefix(lcpp_greedy, hf_greedy) == steps
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("-o", "--output", help="output .gguf (default: MODEL_DIR/model.gguf)")
    p.add_argument("--verify", action="store_true", help="compare llama.cpp's logits with HF transformers'")
    p.add_argument("--verify-tokens", type=int, default=64)
    p.add_argument("--verify-steps", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = args.output or default_output(args.model_dir)
    convert(args.model_dir, out)
    print(f"wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB)")
    if args.verify:
        ok = verify(args.model_dir, out, args.verify_tokens, args.verify_steps, args.seed)
        print("verify:", "OK" if ok else "MISMATCH")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
