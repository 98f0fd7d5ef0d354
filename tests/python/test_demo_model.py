"""The embedded demo model: deterministic, cached, and a valid Hugging Face Llama."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from pagedllm.demo import byte_alphabet, demo_model_dir, write_demo_model

FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return demo_model_dir(str(tmp_path_factory.mktemp("cache")))


def test_two_creations_are_identical(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write_demo_model(str(first))
    write_demo_model(str(second))
    assert sorted(os.listdir(first)) == FILES
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_cached_and_reused(tmp_path):
    path = demo_model_dir(str(tmp_path))
    assert path == str(tmp_path / "demo-v1")
    stamp = os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns
    assert demo_model_dir(str(tmp_path)) == path
    assert os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns == stamp
    assert os.listdir(tmp_path) == ["demo-v1"]


def test_incomplete_cache_is_rebuilt(tmp_path):
    path = demo_model_dir(str(tmp_path))
    os.remove(os.path.join(path, "tokenizer.json"))
    assert demo_model_dir(str(tmp_path)) == path
    assert sorted(os.listdir(path)) == FILES


def test_concurrent_first_uses(tmp_path):
    results, errors = [], []

    def create():
        try:
            results.append(demo_model_dir(str(tmp_path)))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert set(results) == {str(tmp_path / "demo-v1")}
    assert os.listdir(tmp_path) == ["demo-v1"]
    assert sorted(os.listdir(tmp_path / "demo-v1")) == FILES


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert demo_model_dir() == str(tmp_path / "pagedllm" / "demo-v1")


def test_config_and_weights(demo_dir):
    from safetensors.numpy import load_file

    config = json.load(open(os.path.join(demo_dir, "config.json")))
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama" and config["hidden_act"] == "silu"
    assert (config["vocab_size"], config["bos_token_id"], config["eos_token_id"]) == (258, 256, 257)
    assert config["tie_word_embeddings"] is False and config["torch_dtype"] == "float32"
    tensors = load_file(os.path.join(demo_dir, "model.safetensors"))
    assert tensors["model.embed_tokens.weight"].shape == (258, 256)
    assert tensors["model.layers.3.self_attn.k_proj.weight"].shape == (128, 256)
    assert tensors["model.layers.0.mlp.down_proj.weight"].shape == (256, 688)
    assert tensors["lm_head.weight"].shape == (258, 256)
    assert len(tensors) == 2 + 4 * 9 + 1
    assert all(t.dtype.name == "float32" for t in tensors.values())
    assert (tensors["model.norm.weight"] == 1).all()
    assert 0.015 < tensors["model.layers.1.mlp.up_proj.weight"].std() < 0.025


def test_creation_imports_no_torch(tmp_path):
    code = ("import sys; from pagedllm.demo import demo_model_dir; "
            f"demo_model_dir({str(tmp_path)!r}); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_byte_alphabet_is_gpt2_byte_level():
    from tokenizers import pre_tokenizers

    alphabet = byte_alphabet()
    assert len(set(alphabet)) == 256
    assert sorted(alphabet) == sorted(pre_tokenizers.ByteLevel.alphabet())
    assert alphabet[ord("A")] == "A" and alphabet[ord(" ")] == "\u0120"


def test_loads_in_transformers(demo_dir):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model, info = transformers.LlamaForCausalLM.from_pretrained(
        demo_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(model).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs = model(ids).logits[0].softmax(-1)
    assert probs.shape == (64, 258)
    assert probs[:, 32:127].sum(-1).mean() > 0.95


def test_tokenizer_loads_in_transformers(demo_dir):
    transformers = pytest.importorskip("transformers")
    from pagedllm.tokenizer import Tokenizer

    ours = Tokenizer(demo_dir)
    theirs = transformers.PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(demo_dir, "tokenizer.json"))
    for text in ["Hello world", "Grüße 世界 🎉", " leading space", "a</s>b"]:
        assert theirs(text).input_ids == ours.encode(text)
        assert theirs.decode(ours.encode(text), skip_special_tokens=True) == \
            ours.decode(ours.encode(text))
    auto = transformers.AutoTokenizer.from_pretrained(demo_dir)
    assert (auto.bos_token, auto.eos_token) == ("<s>", "</s>")
    messages = [{"role": "user", "content": "hi"}]
    assert auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        ours.apply_chat_template(messages)
