"""SamplingParams: vLLM's defaults, validation messages and the mapping to the core."""

from __future__ import annotations

import sys
import types

import pytest

import pagedllm
from pagedllm import RequestOutputKind, SamplingParams

VLLM_DEFAULTS = {
    "n": 1, "best_of": None, "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "repetition_penalty": 1.0, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
    "seed": None, "stop": [], "stop_token_ids": [], "include_stop_str_in_output": False,
    "ignore_eos": False, "max_tokens": 16, "min_tokens": 0, "logprobs": None,
    "prompt_logprobs": None, "skip_special_tokens": True,
    "spaces_between_special_tokens": True, "detokenize": True,
}


def test_defaults_match_vllm():
    params = SamplingParams()
    for name, value in VLLM_DEFAULTS.items():
        assert getattr(params, name) == value, name
    assert params.output_kind is RequestOutputKind.CUMULATIVE


def test_normalization():
    assert SamplingParams(stop="###").stop == ["###"]
    assert SamplingParams(stop=("a", "b")).stop == ["a", "b"]
    assert SamplingParams(top_k=-1).top_k == 0
    greedy = SamplingParams(temperature=0.0, top_p=0.5, top_k=5, min_p=0.2)
    assert (greedy.top_p, greedy.top_k, greedy.min_p) == (1.0, 0, 0.0)
    assert greedy.sampling_type_greedy
    assert SamplingParams(max_tokens=None).max_tokens is None
    assert SamplingParams(n=3, best_of=3).n == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be at least 1, got 0."),
    ({"n": 1.5}, "n must be an int"),
    ({"n": 2, "best_of": 1}, "best_of must be greater than or equal to n"),
    ({"presence_penalty": 2.5}, r"presence_penalty must be in \[-2, 2\], got 2.5."),
    ({"frequency_penalty": -3}, r"frequency_penalty must be in \[-2, 2\], got -3."),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be greater than zero, got 0.0."),
    ({"temperature": -0.1}, "temperature must be non-negative, got -0.1."),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0."),
    ({"top_p": 1.1}, r"top_p must be in \(0, 1\], got 1.1."),
    ({"top_k": -2}, "top_k must be 0 or -1 \\(disable\\), or at least 1, got -2."),
    ({"min_p": 1.5}, r"min_p must be in \[0, 1\], got 1.5."),
    ({"max_tokens": 0}, "max_tokens must be at least 1, got 0."),
    ({"min_tokens": -1}, "min_tokens must be greater than or equal to 0, got -1."),
    ({"max_tokens": 4, "min_tokens": 5},
     "min_tokens must be less than or equal to max_tokens=4, got 5."),
    ({"logprobs": -1}, "logprobs must be non-negative, got -1."),
    ({"prompt_logprobs": -2}, "prompt_logprobs must be non-negative, got -2."),
    ({"stop": ["ok", ""]}, "stop cannot contain an empty string."),
    ({"stop": "x", "detokenize": False}, "stop strings are only supported when detokenize"),
    ({"seed": "7"}, "seed must be an int"),
    ({"stop_token_ids": [1, "2"]}, "stop_token_ids must be an int"),
])
def test_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_clone_revalidates():
    params = SamplingParams(temperature=0.7, stop="x")
    clone = params.clone(output_kind=RequestOutputKind.FINAL_ONLY)
    assert clone.temperature == 0.7 and clone.stop == ["x"]
    assert clone.output_kind is RequestOutputKind.FINAL_ONLY
    assert params.output_kind is RequestOutputKind.CUMULATIVE
    with pytest.raises(ValueError):
        params.clone(top_p=2.0)


@pytest.fixture
def fake_core(monkeypatch):
    class CoreSamplingParams:
        pass

    module = types.ModuleType("pagedllm._core")
    module.SamplingParams = CoreSamplingParams
    monkeypatch.setitem(sys.modules, "pagedllm._core", module)
    monkeypatch.setattr(pagedllm, "_core", module, raising=False)
    return module


def test_to_core_maps_every_field(fake_core):
    params = SamplingParams(temperature=0.5, top_p=0.9, top_k=40, min_p=0.05,
                            presence_penalty=0.1, frequency_penalty=0.2,
                            repetition_penalty=1.1, seed=-1, max_tokens=7, min_tokens=2,
                            stop_token_ids=[5, 6], ignore_eos=True, logprobs=3,
                            prompt_logprobs=0)
    core = params.to_core()
    assert (core.temperature, core.top_p, core.top_k, core.min_p) == (0.5, 0.9, 40, 0.05)
    assert (core.presence_penalty, core.frequency_penalty) == (0.1, 0.2)
    assert core.repetition_penalty == 1.1
    assert core.seed == 2**64 - 1
    assert (core.max_tokens, core.min_tokens) == (7, 2)
    assert core.stop_token_ids == [5, 6] and core.ignore_eos is True
    assert (core.logprobs, core.prompt_logprobs) == (3, 0)


def test_to_core_defaults_and_overrides(fake_core):
    core = SamplingParams().to_core()
    assert core.seed is None and core.logprobs == -1 and core.prompt_logprobs == -1
    assert core.top_k == 0 and core.max_tokens == 16
    derived = SamplingParams(max_tokens=None, seed=10, prompt_logprobs=2).to_core(
        max_tokens=100, seed=12, with_prompt_logprobs=False)
    assert derived.max_tokens == 100 and derived.seed == 12 and derived.prompt_logprobs == -1
    with pytest.raises(ValueError, match="max_tokens"):
        SamplingParams(max_tokens=None).to_core()
