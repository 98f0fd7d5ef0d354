"""The embedded demo model: a small random-weight Llama with a byte-level tokenizer.

It is written deterministically (fixed numpy seed) on first use into
``$XDG_CACHE_HOME/pagedllm/demo-v1`` (default ``~/.cache/pagedllm/demo-v1``) and reused.
Needs no network and no torch. Its text is gibberish by construction.

Model: LlamaForCausalLM, hidden 256, 4 layers, 8 query heads and 4 KV heads of dim 32,
intermediate 688, max_position_embeddings 2048, rope_theta 10000, float32 weights (numpy has
no bfloat16; about 12 MB), untied LM head. Linear and embedding weights are N(0, 0.02), norm
weights 1. Hidden channel 0 of every embedding is 0.5 and the LM head reads it with +1 for
printable ASCII and newline, -1 for everything else, so the gibberish is mostly readable.

Tokenizer: 258 tokens: ids 0-255 are the bytes 0-255 (GPT-2 byte-to-unicode alphabet, no
merges), 256 is ``<s>`` (BOS, prepended by the post-processor) and 257 is ``</s>`` (EOS).
"""

from __future__ import annotations

from collections.abc import Sequence

import json
import os
import shutil
import tempfile

DEMO_NAME = "demo"
_DIR_NAME = "demo-v1"
_SEED = 20240521
_HIDDEN = 256
_LAYERS = 4
_HEADS = 8
_KV_HEADS = 4
_HEAD_DIM = _HIDDEN // _HEADS
_INTERMEDIATE = 688
_BOS_ID = 256
_EOS_ID = 257
_VOCAB = 258
_MAX_POSITIONS = 2048
_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
          "tokenizer_config.json")
_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/pagedllm``, or ``~/.cache/pagedllm``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "pagedllm")


def demo_model_dir(cache_dir: str | None = None) -> str:
    """The demo model's directory, created on first use (safe under concurrent first uses)."""
    parent = cache_dir or default_cache_dir()
    final = os.path.join(parent, _DIR_NAME)
    if _is_complete(final):
        return final
    if os.path.isdir(final) and not _is_complete(final):
        shutil.rmtree(final, ignore_errors=True)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{_DIR_NAME}.", dir=parent)
    try:
        write_demo_model(staging)
        try:
            os.rename(staging, final)
        except OSError:
            if not _is_complete(final):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _is_complete(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, name)) for name in _FILES)


def write_demo_model(path: str) -> None:
    """Writes the demo model's files into the existing directory ``path``."""
    _write_json(os.path.join(path, "config.json"), _config())
    _write_json(os.path.join(path, "generation_config.json"),
                {"bos_token_id": _BOS_ID, "eos_token_id": _EOS_ID})
    _write_json(os.path.join(path, "tokenizer_config.json"), _tokenizer_config())
    _write_weights(os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(_build_tokenizer().to_str(pretty=True))


def _write_json(path: str, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def _config() -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": _HIDDEN,
        "intermediate_size": _INTERMEDIATE,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
        "num_key_value_heads": _KV_HEADS,
        "head_dim": _HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": _MAX_POSITIONS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": _VOCAB,
        "bos_token_id": _BOS_ID,
        "eos_token_id": _EOS_ID,
        "transformers_version": "4.46.0",
    }


def _tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": _MAX_POSITIONS,
        "chat_template": _CHAT_TEMPLATE,
    }


def _weights() -> dict:
    import numpy as np

    rng = np.random.default_rng(_SEED)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

    def ones() -> np.ndarray:
        return np.ones(_HIDDEN, dtype=np.float32)

    embed = normal(_VOCAB, _HIDDEN)
    embed[:, 0] = 0.5
    tensors = {"model.embed_tokens.weight": embed}
    kv_dim = _KV_HEADS * _HEAD_DIM
    for i in range(_LAYERS):
        prefix = f"model.layers.{i}."
        tensors[prefix + "self_attn.q_proj.weight"] = normal(_HEADS * _HEAD_DIM, _HIDDEN)
        tensors[prefix + "self_attn.k_proj.weight"] = normal(kv_dim, _HIDDEN)
        tensors[prefix + "self_attn.v_proj.weight"] = normal(kv_dim, _HIDDEN)
        tensors[prefix + "self_attn.o_proj.weight"] = normal(_HIDDEN, _HEADS * _HEAD_DIM)
        tensors[prefix + "mlp.gate_proj.weight"] = normal(_INTERMEDIATE, _HIDDEN)
        tensors[prefix + "mlp.up_proj.weight"] = normal(_INTERMEDIATE, _HIDDEN)
        tensors[prefix + "mlp.down_proj.weight"] = normal(_HIDDEN, _INTERMEDIATE)
        tensors[prefix + "input_layernorm.weight"] = ones()
        tensors[prefix + "post_attention_layernorm.weight"] = ones()
    tensors["model.norm.weight"] = ones()
    lm_head = normal(_VOCAB, _HIDDEN)
    readable = np.zeros(_VOCAB, dtype=bool)
    readable[32:127] = True
    readable[ord("\n")] = True
    lm_head[:, 0] = np.where(readable, np.float32(1.0), np.float32(-1.0))
    tensors["lm_head.weight"] = lm_head
    return tensors


def _write_weights(path: str) -> None:
    from safetensors.numpy import save_file

    save_file(_weights(), path, metadata={"format": "pt"})


def byte_alphabet() -> list[str]:
    """The printable character standing for each byte 0-255 (GPT-2's byte-level scheme):
    visible Latin-1 bytes stand for themselves, the rest map to U+0100 onwards."""
    visible = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(
        range(0xAE, 0x100))
    chars = []
    shifted = 0
    for byte in range(256):
        if byte in visible:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + shifted))
            shifted += 1
    return chars


def byte_level_tokenizer(special_tokens: Sequence[str] = (), bos_token: str | None = None):
    """A byte-level tokenizer with no merges: ids 0-255 are the bytes (through byte_alphabet),
    then ``special_tokens`` in order. With ``bos_token``, encoding prepends it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {char: byte for byte, char in enumerate(byte_alphabet())}
    for offset, token in enumerate(special_tokens):
        vocab[token] = 256 + offset
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    if bos_token is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B",
            special_tokens=[(bos_token, vocab[bos_token])])
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)
                                  for token in special_tokens])
    return tokenizer


def _build_tokenizer():
    return byte_level_tokenizer(["<s>", "</s>"], bos_token="<s>")
