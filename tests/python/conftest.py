"""Shared fixtures: tiny peaked random-weight checkpoints (built once per session) and their
Hugging Face reference models."""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import models  # noqa: E402

# Every engine in the tests uses this many threads: the suite must run on 2 cores.
NUM_THREADS = 2

# A test that exposes a known pagedllm bug calls known_bug(request, condition, "pagedllm bug: ...")
# (a strict xfail: the fix then shows up as an XPASS failure, and the call is deleted).


def known_bug(request, condition: bool, reason: str) -> None:
    """Marks the running test as a strict xfail for reason when condition holds."""
    if condition:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def check_peaked(model_dir: str, vocab_size: int) -> None:
    """The builder's promise: on probe prompts, the reference greedy top1 - top2 logit margins
    are mostly large, so token-for-token comparisons are meaningful."""
    hf = models.load_hf(model_dir)
    rng = random.Random(1234)
    margins = []
    for length in (1, 9, 40):
        _, m = models.hf_greedy(hf, models.random_prompt(rng, length, vocab_size), 16)
        margins += m
    small = sum(1 for m in margins if m < 0.1) / len(margins)
    assert small <= 0.1, f"{model_dir}: {small:.0%} of greedy margins below 0.1; make the model more peaked"


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("pagedllm_models"))


@pytest.fixture(scope="session")
def get_model(model_root):
    """get_model(name, dtype="float32") -> the checkpoint directory (built on first use)."""
    built: dict[tuple[str, str], str] = {}

    def get(name: str, dtype: str = "float32") -> str:
        key = (name, dtype)
        if key not in built:
            spec = models.SPECS[name]
            path = models.build_checkpoint(spec, os.path.join(model_root, f"{name}-{dtype}"), dtype)
            if dtype == "float32":
                check_peaked(path, vocab_size(name))
            built[key] = path
        return built[key]

    return get


def vocab_size(name: str) -> int:
    return models.SPECS[name].config.get("vocab_size", models._COMMON["vocab_size"])


@pytest.fixture(scope="session")
def llama_dir(get_model) -> str:
    return get_model("llama")


def engine_config(model_dir: str, **overrides):
    """A pagedllm._core.EngineConfig for model_dir (quiet, 2 threads) with overrides."""
    from pagedllm import _core

    cfg = _core.EngineConfig()
    cfg.model = model_dir
    cfg.num_threads = NUM_THREADS
    cfg.log_stats = False
    for k, v in overrides.items():
        assert hasattr(cfg, k), k
        setattr(cfg, k, v)
    return cfg


def make_engine(model_dir: str, **overrides):
    from pagedllm import _core

    return _core.Engine(engine_config(model_dir, **overrides))


def core_params(**kw):
    """A pagedllm._core.SamplingParams (greedy, ignore_eos by default) with kw set."""
    from pagedllm import _core

    p = _core.SamplingParams()
    p.temperature = 0.0
    p.ignore_eos = True
    for k, v in kw.items():
        assert hasattr(p, k), k
        setattr(p, k, v)
    return p


def collect(results: dict, d) -> None:
    r = results.setdefault(d.request_id, dict(tokens=[], logprobs=[], prompt_logprobs={}, finish_reason=None,
                                              stop_token_id=None, finished_count=0))
    assert r["finished_count"] == 0, f"output for {d.request_id} after it finished"
    r["tokens"] += list(d.new_token_ids)
    r["logprobs"] += list(d.new_logprobs)
    for i, lp in enumerate(d.prompt_logprobs):
        pos = d.prompt_logprobs_start + i
        assert pos not in r["prompt_logprobs"], f"prompt logprob of position {pos} delivered twice"
        r["prompt_logprobs"][pos] = lp
    if d.finished:
        r["finished_count"] += 1
        r["finish_reason"] = d.finish_reason
        r["stop_token_id"] = d.stop_token_id


def llm_engine(llm):
    """The pagedllm._core.Engine behind an LLM object (for stats() and model_info)."""
    return llm.llm_engine._core


def make_llm(model_dir: str, dtype: str = "auto", **kw):
    """pagedllm.LLM for model_dir: quiet, 2 threads, max_model_len 256 unless overridden."""
    from pagedllm import LLM

    kw.setdefault("max_model_len", 256)
    kw.setdefault("num_threads", NUM_THREADS)
    kw.setdefault("log_stats", False)
    kw.setdefault("seed", 0)
    return LLM(model_dir, dtype=dtype, **kw)


def token_prompts(batch):
    return [{"prompt_token_ids": list(p)} for p in batch]
