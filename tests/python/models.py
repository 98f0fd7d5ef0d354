"""Tiny random-weight Hugging Face checkpoints and torch references for the pagedllm tests.

Every model is built deterministically (seeded) with transformers, made "peaked" (large
embeddings and LM head, so top-1 logit margins are large and a real bug cannot hide behind a
near-tie), and saved with save_pretrained (safetensors) together with a byte-level
tokenizer.json whose vocabulary matches the model's. The reference side (torch, CPU) lives here
too: per-position log-softmax, greedy decoding with its top-1 margins, and sampling filters.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

EOS_TOKEN_ID = 2
BOS_TOKEN_ID = 1
MAX_POSITION_EMBEDDINGS = 512


@dataclass(frozen=True)
class ModelSpec:
    """One tiny architecture variant."""

    name: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    # Multiplies o_proj / down_proj: with tied embeddings the residual copy of the current
    # token's embedding would otherwise make the model repeat its input token forever.
    residual_scale: float = 1.0


_COMMON = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=MAX_POSITION_EMBEDDINGS,
    rms_norm_eps=1e-5,
    bos_token_id=BOS_TOKEN_ID,
    eos_token_id=EOS_TOKEN_ID,
    tie_word_embeddings=False,
)

SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("llama", "LlamaForCausalLM", dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), seed=1),
        ModelSpec(
            "llama3_rope",
            "LlamaForCausalLM",
            dict(
                rope_parameters={
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64,
                    "rope_theta": 500000.0,
                },
                num_key_value_heads=1,
            ),
            seed=2,
        ),
        ModelSpec("llama_tied", "LlamaForCausalLM", dict(tie_word_embeddings=True, num_key_value_heads=4), seed=3,
                  residual_scale=6.0),
        ModelSpec("mistral", "MistralForCausalLM", dict(sliding_window=None), seed=4),
        ModelSpec("qwen2", "Qwen2ForCausalLM", dict(vocab_size=384, use_sliding_window=False), seed=5),
        ModelSpec(
            "qwen3",
            "Qwen3ForCausalLM",
            dict(vocab_size=512, head_dim=32, hidden_size=96, intermediate_size=160, use_sliding_window=False),
            seed=6,
        ),
    ]
}

ARCH_NAMES = list(SPECS)


# ---------------------------------------------------------------------------------------------
# Building checkpoints


def _config(spec: ModelSpec):
    import transformers

    cfg_cls = getattr(transformers, spec.architecture.replace("ForCausalLM", "Config"))
    kwargs = dict(_COMMON)
    kwargs.update(spec.config)
    cfg = cfg_cls(**kwargs)
    cfg.architectures = [spec.architecture]
    return cfg


def _peak(model, seed: int, residual_scale: float = 1.0) -> None:
    """Overwrites the random init: O(1) activations, large logits (std ~ 8)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("lm_head.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * (8.0 / math.sqrt(p.shape[1])))
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                scale = 1.0 / math.sqrt(p.shape[1])
                if "q_proj" in name or "k_proj" in name:
                    scale *= 2.0  # sharper attention patterns
                if "o_proj" in name or "down_proj" in name:
                    scale *= residual_scale
                p.copy_(torch.randn(p.shape, generator=g) * scale)
            else:
                raise AssertionError(f"unexpected parameter {name}")


def write_tokenizer(model_dir: str, vocab_size: int) -> None:
    """A byte-level tokenizer.json: ids 0..255 are the bytes, the rest are extra tokens."""
    from pagedllm.demo import byte_alphabet, byte_level_tokenizer

    assert vocab_size >= 256
    byte_map = byte_alphabet()
    tok = byte_level_tokenizer([f"<|extra_{i}|>" for i in range(256, vocab_size)])
    assert tok.get_vocab_size(with_added_tokens=True) == vocab_size
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": byte_map[BOS_TOKEN_ID],
        "eos_token": byte_map[EOS_TOKEN_ID],
        "model_max_length": MAX_POSITION_EMBEDDINGS,
        "add_bos_token": False,
        "add_eos_token": False,
    }
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def build_checkpoint(spec: ModelSpec, out_dir: str, dtype: str = "float32") -> str:
    """Saves spec's peaked random model at out_dir with weights in dtype; returns out_dir.

    The bf16 checkpoint holds exactly the fp32 checkpoint's weights rounded to bf16.
    """
    import transformers

    torch.manual_seed(spec.seed)
    cfg = _config(spec)
    model_cls = getattr(transformers, spec.architecture)
    model = model_cls(cfg).eval()
    _peak(model, spec.seed, spec.residual_scale)
    if dtype == "bfloat16":
        for p in model.parameters():
            p.data = p.data.to(torch.bfloat16)
    model.config.dtype = dtype
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    # The engine reads eos from generation_config.json too; keep it consistent with config.json.
    write_tokenizer(out_dir, cfg.vocab_size)
    with open(os.path.join(out_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved.get("dtype") == dtype, saved.get("dtype")
    return out_dir


def copy_with_config(src: str, dst: str, **overrides: Any) -> str:
    """A copy of checkpoint src at dst with config.json (and generation_config.json) fields
    replaced by overrides."""
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for fname in ("config.json", "generation_config.json"):
        path = os.path.join(dst, fname)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            cfg = json.load(f)
        for k, v in overrides.items():
            if fname == "config.json" or k in cfg:
                cfg[k] = v
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
    return dst


# ---------------------------------------------------------------------------------------------
# Reference side


_HF_CACHE: dict[tuple[str, str], Any] = {}


def load_hf(model_dir: str, compute_dtype: torch.dtype = torch.float32):
    """The HF model from model_dir, weights cast to compute_dtype at load (rotary buffers stay
    fp32). From a bf16 checkpoint with compute_dtype=float32 this is 'bf16 weights, fp32 math'."""
    import transformers

    key = (model_dir, str(compute_dtype))
    if key not in _HF_CACHE:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=compute_dtype)
        model.eval()
        _HF_CACHE[key] = model
    return _HF_CACHE[key]


@torch.no_grad()
def hf_logits(model, token_ids: list[int]) -> torch.Tensor:
    """Raw logits [len(token_ids), vocab] as float64 (row i predicts token i + 1)."""
    ids = torch.tensor([token_ids], dtype=torch.long)
    out = model(input_ids=ids, use_cache=False)
    return out.logits[0].double()


def hf_logprobs(model, token_ids: list[int]) -> torch.Tensor:
    return torch.log_softmax(hf_logits(model, token_ids), dim=-1)


def top2_margin(row: torch.Tensor) -> float:
    v = torch.topk(row, 2).values
    return float(v[0] - v[1])


@torch.no_grad()
def hf_greedy(model, prompt: list[int], max_tokens: int) -> tuple[list[int], list[float]]:
    """Greedy continuation (no EOS stop) and the top1 - top2 logit margin at each step.

    Recomputes the whole sequence every step (no KV cache) so the reference is as plain as it
    gets."""
    seq = list(prompt)
    out, margins = [], []
    for _ in range(max_tokens):
        row = hf_logits(model, seq)[-1]
        tok = int(torch.argmax(row))
        margins.append(top2_margin(row))
        out.append(tok)
        seq.append(tok)
    return out, margins


def random_prompt(rng: random.Random, length: int, vocab_size: int) -> list[int]:
    # Avoid the EOS/BOS ids so prompts look like ordinary text.
    return [rng.randrange(3, vocab_size) for _ in range(length)]


def assert_greedy_equal(ours: list[int], ref: list[int], margins: list[float], tie_tol: float, what: str = "") -> None:
    """Token-for-token equality; the only excuse for a mismatch is a reference near-tie
    (top1 - top2 margin below tie_tol) at the first differing position."""
    assert len(ours) == len(ref), f"{what}: {len(ours)} tokens, reference {len(ref)}"
    for i, (a, b) in enumerate(zip(ours, ref)):
        if a != b:
            assert margins[i] < tie_tol, (
                f"{what}: greedy token {i} is {a}, reference {b} (reference margin "
                f"{margins[i]:.4f} >= {tie_tol}); ours={ours} ref={ref}"
            )
            return


# ---------------------------------------------------------------------------------------------
# Sampling references (the rules pagedllm documents, vLLM's semantics)


def apply_penalties(logits: torch.Tensor, prompt: list[int], output: list[int], repetition_penalty: float = 1.0,
                    presence_penalty: float = 0.0, frequency_penalty: float = 0.0) -> torch.Tensor:
    """Repetition penalty HF style over prompt + output tokens (divide positive logits, multiply
    negative ones); presence / frequency OpenAI style over output tokens only."""
    x = logits.clone()
    if repetition_penalty != 1.0:
        seen = sorted(set(prompt) | set(output))
        for t in seen:
            x[t] = x[t] / repetition_penalty if x[t] > 0 else x[t] * repetition_penalty
    counts: dict[int, int] = {}
    for t in output:
        counts[t] = counts.get(t, 0) + 1
    for t, c in counts.items():
        x[t] -= frequency_penalty * c + presence_penalty
    return x


def allowed_set(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                min_p: float = 0.0, slack: float = 0.0, min_p_first: bool = False) -> set[int]:
    """Token ids that may be drawn after temperature, top-k, then top-p (smallest prefix of the
    sorted distribution whose mass reaches top_p), then min-p (probability at least min_p times
    the top token's); with min_p_first, min-p comes before top-k (vLLM's order). slack loosens
    every threshold a little so that float differences between pagedllm's logits and the
    reference never produce a false failure at a boundary."""
    x = logits.double() / temperature
    neg_inf = torch.tensor(-math.inf, dtype=x.dtype)
    keep = torch.ones_like(x, dtype=torch.bool)

    def probs_of(mask):
        return torch.softmax(torch.where(mask, x, neg_inf), dim=-1)

    def apply_min_p(mask):
        if min_p <= 0.0:
            return mask
        p = probs_of(mask)
        return mask & (p >= (min_p - slack) * p.max())

    if min_p_first:
        keep = apply_min_p(keep)
    if top_k and top_k > 0:
        order = torch.argsort(torch.where(keep, x, neg_inf), descending=True)
        kth = x[order[min(top_k, int(keep.sum())) - 1]]
        keep &= x >= kth - slack
    if top_p < 1.0:
        probs = probs_of(keep)
        order = torch.argsort(probs, descending=True)
        sp = probs[order]
        cum_before = torch.cumsum(sp, 0) - sp  # mass strictly before each sorted token
        in_nucleus = cum_before < top_p + slack
        nucleus = torch.zeros_like(keep)
        nucleus[order[in_nucleus]] = True
        keep &= nucleus
    if not min_p_first:
        keep = apply_min_p(keep)
    return set(int(i) for i in torch.nonzero(keep).flatten())
