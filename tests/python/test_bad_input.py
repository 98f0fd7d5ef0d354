"""Bad input gives a clear Python exception naming the problem, and never takes the engine down.

Corrupt checkpoints (truncated safetensors, bad header length, offsets out of range, wrong
dtypes, bad shapes, missing tensors), missing files, unknown architectures and dtypes, oversize
prompts, invalid sampling parameters, out-of-vocabulary token ids and duplicate request ids.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct

import pytest

import models
from conftest import collect, core_params, engine_config, make_engine, make_llm, token_prompts

# ---------------------------------------------------------------------------------------------
# Checkpoint surgery


def read_safetensors(path: str) -> tuple[dict, bytes]:
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors(path: str, header: dict, data: bytes, header_len: int | None = None) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text) if header_len is None else header_len))
        f.write(text)
        f.write(data)


@pytest.fixture
def broken(get_model, tmp_path):
    """broken(mutate) -> a copy of the llama checkpoint after mutate(dir) ran on it."""
    src = get_model("llama")

    def make(mutate) -> str:
        dst = str(tmp_path / f"m{len(os.listdir(tmp_path))}")
        shutil.copytree(src, dst)
        mutate(dst)
        return dst

    return make


def st_path(d: str) -> str:
    return os.path.join(d, "model.safetensors")


def truncate(d, keep_fraction=0.5):
    size = os.path.getsize(st_path(d))
    with open(st_path(d), "r+b") as f:
        f.truncate(int(size * keep_fraction))


def truncate_to(d, nbytes):
    with open(st_path(d), "r+b") as f:
        f.truncate(nbytes)


def header_length(d, value):
    with open(st_path(d), "r+b") as f:
        f.write(struct.pack("<Q", value))


def garbage_header(d):
    header, data = read_safetensors(st_path(d))
    text = b"{not json" + b" " * 7
    with open(st_path(d), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def edit_entry(name_part: str, fn):
    def mutate(d):
        header, data = read_safetensors(st_path(d))
        key = next(k for k in header if name_part in k)
        fn(header[key], len(data))
        write_safetensors(st_path(d), header, data)

    return mutate


def offsets_past_end(entry, data_len):
    entry["data_offsets"] = [data_len - 4, data_len + 1020]


def offsets_too_short(entry, data_len):
    b, e = entry["data_offsets"]
    entry["data_offsets"] = [b, e - 4]


def shape_mismatch(entry, data_len):
    entry["shape"] = list(reversed(entry["shape"]))[:1] + [entry["shape"][0] * 2]


def transpose_shape(entry, data_len):
    entry["shape"] = list(reversed(entry["shape"]))


def retype(dtype: str):
    """Re-save one weight with another dtype (with correctly sized data)."""

    def mutate(d):
        import torch
        from safetensors.torch import load_file, save_file

        tensors = load_file(st_path(d))
        key = next(k for k in tensors if "layers.0.self_attn.q_proj" in k)
        if dtype == "F64":
            tensors[key] = tensors[key].double()
        elif dtype == "I8":
            tensors[key] = (tensors[key] * 10).to(torch.int8)
        elif dtype == "I32":
            tensors[key] = (tensors[key] * 10).to(torch.int32)
        save_file(tensors, st_path(d), metadata={"format": "pt"})

    return mutate


def drop_tensor(d):
    from safetensors.torch import load_file, save_file

    tensors = load_file(st_path(d))
    del tensors[next(k for k in tensors if "layers.1.mlp.down_proj" in k)]
    save_file(tensors, st_path(d), metadata={"format": "pt"})


def edit_config(**fields):
    def mutate(d):
        path = os.path.join(d, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg.update(fields)
        with open(path, "w") as f:
            json.dump(cfg, f)

    return mutate


def remove(name):
    return lambda d: os.remove(os.path.join(d, name))


def write_text(name, text):
    def mutate(d):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

    return mutate


CORRUPT = {
    # name: (mutation, exception, words the message must contain)
    "truncated_half": (truncate, ValueError, ["model.safetensors"]),
    "truncated_to_5_bytes": (lambda d: truncate_to(d, 5), ValueError, ["model.safetensors"]),
    "truncated_in_header": (lambda d: truncate_to(d, 40), ValueError, ["model.safetensors"]),
    "empty_file": (lambda d: truncate_to(d, 0), ValueError, ["model.safetensors"]),
    "header_length_huge": (lambda d: header_length(d, 1 << 40), ValueError, ["header"]),
    "header_length_past_file": (lambda d: header_length(d, os.path.getsize(st_path(d)) + 1), ValueError, ["header"]),
    "header_not_json": (garbage_header, ValueError, ["model.safetensors"]),
    "offsets_out_of_range": (edit_entry("q_proj", offsets_past_end), ValueError, ["q_proj"]),
    "offsets_disagree_with_shape": (edit_entry("k_proj", offsets_too_short), ValueError, ["k_proj"]),
    "shape_disagrees_with_bytes": (edit_entry("v_proj", shape_mismatch), ValueError, ["v_proj"]),
    "wrong_shape_for_model": (edit_entry("layers.0.mlp.up_proj", transpose_shape), ValueError, ["up_proj"]),
    "dtype_f64": (retype("F64"), ValueError, ["q_proj"]),
    "dtype_i8": (retype("I8"), ValueError, ["q_proj"]),
    "dtype_i32": (retype("I32"), ValueError, ["q_proj"]),
    "missing_tensor": (drop_tensor, ValueError, ["down_proj"]),
    "missing_config": (remove("config.json"), FileNotFoundError, ["config.json"]),
    "missing_weights": (remove("model.safetensors"), FileNotFoundError, ["safetensors"]),
    "config_not_json": (write_text("config.json", "{\"architectures\": [\"LlamaForCausalLM\""), ValueError,
                        ["config.json"]),
    "unknown_architecture": (edit_config(architectures=["GPT2LMHeadModel"], model_type="gpt2"), ValueError,
                             ["GPT2LMHeadModel"]),
    "missing_hidden_size": (lambda d: edit_config(hidden_size=None)(d), ValueError, ["hidden_size"]),
    "unsupported_rope_type": (edit_config(rope_parameters={"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}),
                              ValueError, ["yarn"]),
    "unsupported_activation": (edit_config(hidden_act="gelu"), ValueError, ["gelu"]),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_checkpoint_core(broken, case):
    mutate, exc, words = CORRUPT[case]
    d = broken(mutate)
    from pagedllm import _core

    with pytest.raises(exc) as info:
        _core.Engine(engine_config(d))
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{case}: message {msg!r} does not mention {w!r}"


@pytest.mark.parametrize("case", ["truncated_half", "offsets_out_of_range", "dtype_f64", "missing_config",
                                  "unknown_architecture", "header_length_huge"])
def test_corrupt_checkpoint_llm(broken, case):
    mutate, exc, words = CORRUPT[case]
    d = broken(mutate)
    with pytest.raises(exc) as info:
        make_llm(d)
    for w in words:
        assert w in str(info.value)


def test_missing_model_dir(tmp_path):
    from pagedllm import _core

    missing = str(tmp_path / "does-not-exist")
    with pytest.raises(FileNotFoundError):
        _core.Engine(engine_config(missing))
    with pytest.raises((FileNotFoundError, ValueError, OSError)):
        make_llm(missing)


def test_missing_tokenizer_is_clear(broken):
    d = broken(remove("tokenizer.json"))
    with pytest.raises(FileNotFoundError) as info:
        make_llm(d)
    assert "tokenizer" in str(info.value)


@pytest.mark.parametrize("dtype", ["float16", "float64", "int8", "fp8", ""])
def test_unsupported_dtype_argument(llama_dir, dtype):
    with pytest.raises(ValueError) as info:
        make_llm(llama_dir, dtype=dtype)
    assert "dtype" in str(info.value)


@pytest.mark.parametrize("dtype", ["float64", "int8", "fp8"])
def test_unsupported_dtype_core(llama_dir, dtype):
    from pagedllm import _core

    with pytest.raises(ValueError) as info:
        _core.Engine(engine_config(llama_dir, dtype=dtype))
    assert dtype in str(info.value)


@pytest.mark.parametrize("field,value", [("block_size", 0), ("max_num_seqs", 0), ("num_kv_blocks", -1),
                                         ("max_model_len", 100000)])
def test_bad_engine_config(llama_dir, field, value):
    from pagedllm import _core

    with pytest.raises(ValueError):
        _core.Engine(engine_config(llama_dir, **{field: value}))


# ---------------------------------------------------------------------------------------------
# Bad requests


def test_oversize_prompt_names_both_lengths(llama_dir):
    llm = make_llm(llama_dir, max_model_len=64)
    with pytest.raises(ValueError) as info:
        llm.generate(token_prompts([[5] * 100]), _sp(max_tokens=4), use_tqdm=False)
    msg = str(info.value)
    assert "100" in msg and "64" in msg, msg
    engine = make_engine(llama_dir, max_model_len=64)
    with pytest.raises(ValueError) as info:
        engine.add_request("x", [5] * 65, core_params(max_tokens=1))
    assert "65" in str(info.value) and "64" in str(info.value)
    assert not engine.has_unfinished_requests()


def _sp(**kw):
    from pagedllm import SamplingParams

    kw.setdefault("temperature", 0.0)
    kw.setdefault("ignore_eos", True)
    return SamplingParams(**kw)


BAD_PARAMS = {
    "temperature": -0.5,
    "top_p": 0.0,
    "top_k": -2,
    "min_p": 1.5,
    "presence_penalty": 3.0,
    "frequency_penalty": -2.5,
    "repetition_penalty": 0.0,
    "max_tokens": 0,
    "min_tokens": -1,
    "logprobs": -3,
    "prompt_logprobs": 21,
}


@pytest.mark.parametrize("field", list(BAD_PARAMS))
def test_invalid_sampling_params_core(llama_dir, field):
    """The C++ engine validates params itself (a native caller has no Python check)."""
    engine = make_engine(llama_dir, max_model_len=64)
    p = core_params(max_tokens=4)
    setattr(p, field, BAD_PARAMS[field])
    with pytest.raises(ValueError) as info:
        engine.add_request("bad", [5, 6, 7], p)
    assert field in str(info.value)
    assert not engine.has_unfinished_requests()


@pytest.mark.parametrize("field", [f for f in BAD_PARAMS if f not in ("logprobs", "prompt_logprobs")] + ["n"])
def test_invalid_sampling_params_python(field):
    value = {"n": 0}.get(field, BAD_PARAMS.get(field))
    with pytest.raises(ValueError) as info:
        _sp(**{field: value})
    assert field in str(info.value)


def test_min_tokens_above_max_tokens():
    with pytest.raises(ValueError):
        _sp(min_tokens=5, max_tokens=3)


def test_too_many_logprobs_rejected_by_llm(llama_dir):
    llm = make_llm(llama_dir, max_model_len=64)
    with pytest.raises(ValueError):
        llm.generate(token_prompts([[5, 6]]), _sp(max_tokens=2, logprobs=1000), use_tqdm=False)


@pytest.mark.parametrize("ids", [[5, 256], [-1, 5], [1 << 30], []], ids=["vocab", "negative", "huge", "empty"])
def test_bad_token_ids(llama_dir, ids):
    engine = make_engine(llama_dir, max_model_len=64)
    with pytest.raises(ValueError):
        engine.add_request("bad", ids, core_params(max_tokens=2))
    llm = make_llm(llama_dir, max_model_len=64)
    with pytest.raises(ValueError):
        llm.generate(token_prompts([ids]), _sp(max_tokens=2), use_tqdm=False)


def test_stop_token_id_outside_vocab(llama_dir):
    engine = make_engine(llama_dir, max_model_len=64)
    with pytest.raises(ValueError):
        engine.add_request("bad", [5, 6], core_params(max_tokens=2, stop_token_ids=[300]))


def test_duplicate_request_id(llama_dir):
    engine = make_engine(llama_dir, max_model_len=64)
    engine.add_request("dup", [5, 6, 7], core_params(max_tokens=3))
    with pytest.raises(ValueError) as info:
        engine.add_request("dup", [8, 9], core_params(max_tokens=3))
    assert "dup" in str(info.value)
    results: dict = {}
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
    assert results["dup"]["finished_count"] == 1 and len(results["dup"]["tokens"]) == 3
    assert engine.stats().num_kv_blocks_used == 0


def test_request_larger_than_kv_cache(llama_dir):
    engine = make_engine(llama_dir, max_model_len=128, num_kv_blocks=2, block_size=16)
    with pytest.raises(ValueError):
        engine.add_request("big", [5] * 30, core_params(max_tokens=10))
    engine.add_request("ok", [5] * 20, core_params(max_tokens=10))
    results: dict = {}
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
    assert len(results["ok"]["tokens"]) == 10


# ---------------------------------------------------------------------------------------------
# The engine keeps serving


def test_engine_keeps_serving_after_bad_requests(llama_dir):
    """Bad requests interleaved with good ones (some mid-flight) are rejected one by one; the
    good ones finish with exactly the tokens they get without any bad neighbour."""
    rng = random.Random(9)
    good = {f"g{i}": models.random_prompt(rng, rng.randint(1, 30), 256) for i in range(5)}
    kw = dict(max_tokens=12, logprobs=2)

    def clean_run():
        e = make_engine(llama_dir, max_model_len=64, max_num_batched_tokens=16)
        for rid, p in good.items():
            e.add_request(rid, p, core_params(**kw))
        res: dict = {}
        while e.has_unfinished_requests():
            for d in e.step():
                collect(res, d)
        return res

    expected = clean_run()
    engine = make_engine(llama_dir, max_model_len=64, max_num_batched_tokens=16)
    bad_requests = [
        ("b0", [5] * 65, core_params(max_tokens=1)),
        ("b1", [5, 999], core_params(max_tokens=1)),
        ("b2", [5, 6], core_params(max_tokens=1, temperature=-1.0)),
        ("g0", [5, 6], core_params(max_tokens=1)),  # duplicate of an in-flight id
        ("b4", [], core_params(max_tokens=1)),
        ("b5", [5, 6], core_params(max_tokens=1, top_p=0.0)),
    ]
    results: dict = {}
    items = list(good.items())
    for i in range(max(len(items), len(bad_requests))):
        if i < len(items):
            engine.add_request(items[i][0], items[i][1], core_params(**kw))
        if i < len(bad_requests):
            with pytest.raises(ValueError):
                engine.add_request(*bad_requests[i])
        for d in engine.step():
            collect(results, d)
    while engine.has_unfinished_requests():
        for d in engine.step():
            collect(results, d)
    assert set(results) == set(good), f"unexpected outputs for {set(results) - set(good)}"
    for rid in good:
        assert results[rid]["tokens"] == expected[rid]["tokens"], rid
        assert results[rid]["finished_count"] == 1
    s = engine.stats()
    assert s.num_kv_blocks_used == 0 and s.num_running == 0 and s.num_waiting == 0


def test_llm_generate_after_failed_batch(llama_dir):
    """A batch with one bad prompt raises ValueError; the same LLM then serves normally (and
    nothing of the failed batch is left running)."""
    llm = make_llm(llama_dir, max_model_len=64)
    rng = random.Random(10)
    prompts = [models.random_prompt(rng, n, 256) for n in (3, 17, 9)]
    before = [o.outputs[0].token_ids for o in llm.generate(token_prompts(prompts), _sp(max_tokens=8), use_tqdm=False)]
    for bad in ([1] * 80, [3, 256], []):
        with pytest.raises(ValueError):
            llm.generate(token_prompts(prompts[:2] + [bad] + prompts[2:]), _sp(max_tokens=8), use_tqdm=False)
        assert not llm.llm_engine.has_unfinished_requests()
    after = [o.outputs[0].token_ids for o in llm.generate(token_prompts(prompts), _sp(max_tokens=8), use_tqdm=False)]
    assert after == before
    with pytest.raises(ValueError):
        llm.generate(token_prompts(prompts), [_sp(max_tokens=8)] * 2, use_tqdm=False)
    stats = llm.llm_engine._core.stats()
    assert stats.num_kv_blocks_used == 0 and stats.num_running == 0 and stats.num_waiting == 0
