"""Beam search equals Hugging Face transformers' beam search (model.generate(num_beams=W,
do_sample=False, ...)) on a small fp32 random Llama: the same sequences, scores within float
tolerance, for batches of prompts of different lengths, length penalties, every early_stopping
mode, an EOS id the model really produces, and a KV pool so small that beam groups are
preempted; no block leaks."""

from __future__ import annotations

import collections
import os
import random

import pytest
import torch

import models
from conftest import make_llm

MAX_TOKENS = 10
PROMPT_LENGTHS = (1, 5, 17, 33)


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    rng = random.Random(0)
    return [models.random_prompt(rng, n, 256) for n in PROMPT_LENGTHS]


@pytest.fixture(scope="module")
def eos_model(llama_dir, prompts, tmp_path_factory) -> tuple[str, int]:
    """The llama checkpoint with its EOS set to the token greedy decoding of the prompts
    produces most often, so beams do reach EOS."""
    hf = models.load_hf(llama_dir)
    counts: collections.Counter = collections.Counter()
    for p in prompts:
        counts.update(models.hf_greedy(hf, p, 16)[0])
    eos = counts.most_common(1)[0][0]
    path = models.copy_with_config(llama_dir, os.path.join(tmp_path_factory.mktemp("beam"), "llama-eos"),
                                   eos_token_id=eos)
    return path, eos


def hf_beam_search(model_dir: str, prompt: list[int], width: int, max_new: int, length_penalty: float,
                   early_stopping, eos: int | None) -> list[tuple[list[int], float]]:
    """transformers' beam search on one prompt: (generated tokens up to and including EOS,
    sequences_scores entry) per returned sequence, best first."""
    import transformers

    hf = models.load_hf(model_dir)
    config = transformers.GenerationConfig(
        num_beams=width, do_sample=False, max_new_tokens=max_new, length_penalty=length_penalty,
        early_stopping=early_stopping, num_return_sequences=width, output_scores=True,
        return_dict_in_generate=True, eos_token_id=-1 if eos is None else eos,  # -1: never produced
        pad_token_id=0 if eos is None else eos)
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                          generation_config=config)
    result = []
    for seq, score in zip(out.sequences, out.sequences_scores):
        generated = seq[len(prompt):].tolist()
        if eos is not None and eos in generated:
            generated = generated[:generated.index(eos) + 1]
        result.append((generated, float(score)))
    return result


def assert_same_as_hf(outputs, model_dir: str, prompts, width: int, length_penalty: float, early_stopping,
                      eos: int | None) -> int:
    """Compares every prompt's sequences with transformers'; returns how many ended in EOS."""
    num_eos = 0
    for prompt, output in zip(prompts, outputs):
        ref = hf_beam_search(model_dir, prompt, width, MAX_TOKENS, length_penalty, early_stopping, eos)
        ours = [(s.output_token_ids, s.score) for s in output.sequences]
        assert [t for t, _ in ours] == [t for t, _ in ref], f"prompt of {len(prompt)} tokens"
        for (_, a), (_, b) in zip(ours, ref):
            assert abs(a - b) <= 1e-4 + 1e-5 * abs(b), (a, b)
        for s in output.sequences:
            assert s.tokens[:len(prompt)] == prompt
            assert abs(sum(next(iter(lp.values())).logprob for lp in s.logprobs) - s.cum_logprob) < 1e-4
            num_eos += s.finish_reason == "stop"
    return num_eos


# beam_width 1 is left out: transformers switches to greedy decoding there.
CASES = [  # (beam_width, length_penalty, early_stopping)
    (2, 1.0, False),
    (4, 1.0, False),
    (3, 2.0, "never"),
    (4, 0.5, True),
    (4, -1.0, False),
    (2, 0.0, "never"),
]


@pytest.mark.parametrize("caching", [True, False])
def test_beam_search_equals_transformers(eos_model, prompts, caching):
    from pagedllm import BeamSearchParams

    model_dir, eos = eos_model
    llm = make_llm(model_dir, enable_prefix_caching=caching, block_size=4, num_kv_blocks=256)
    num_eos = 0
    for width, length_penalty, early_stopping in CASES:
        params = BeamSearchParams(beam_width=width, max_tokens=MAX_TOKENS, length_penalty=length_penalty,
                                  early_stopping=early_stopping)
        outputs = llm.beam_search([{"prompt_token_ids": p} for p in prompts], params)
        assert [len(o.sequences) for o in outputs] == [width] * len(prompts)
        num_eos += assert_same_as_hf(outputs, model_dir, prompts, width, length_penalty, early_stopping, eos)
        stats = llm.llm_engine.get_stats()
        assert stats["num_kv_blocks_used"] == 0 and stats["num_running"] == 0
    assert num_eos > 0, "no sequence reached EOS: the test does not cover EOS handling"


def test_beam_search_under_preemption_and_chunking(eos_model, prompts):
    """A pool that holds one beam group at a time and a small token budget: groups are
    preempted and recomputed as a unit, with the same results; the pool is full afterwards."""
    from pagedllm import BeamSearchParams

    model_dir, eos = eos_model
    llm = make_llm(model_dir, block_size=4, num_kv_blocks=44, max_num_batched_tokens=32, max_num_seqs=16)
    params = BeamSearchParams(beam_width=4, max_tokens=MAX_TOKENS)
    outputs = llm.beam_search([{"prompt_token_ids": p} for p in prompts], params)
    assert_same_as_hf(outputs, model_dir, prompts, 4, 1.0, False, eos)
    stats = llm.llm_engine.get_stats()
    assert stats["num_preemptions"] > 0
    assert stats["num_kv_blocks_used"] == 0 and stats["num_running"] == 0 and stats["num_waiting"] == 0


def test_beam_search_ignore_eos_and_text(eos_model, prompts):
    """ignore_eos runs every beam to max_tokens (transformers without an EOS id); text is the
    decoded generated tokens, without the EOS unless include_stop_str_in_output."""
    from pagedllm import BeamSearchParams

    model_dir, eos = eos_model
    llm = make_llm(model_dir)
    generated_before = llm.llm_engine.get_stats()["num_generation_tokens"]
    outputs = llm.beam_search([{"prompt_token_ids": p} for p in prompts[:2]],
                              BeamSearchParams(beam_width=3, max_tokens=MAX_TOKENS, ignore_eos=True))
    assert_same_as_hf(outputs, model_dir, prompts[:2], 3, 1.0, False, None)
    # Every live beam's step generates one token: 1 or 3 rows at the first step, 3 after it.
    generated = llm.llm_engine.get_stats()["num_generation_tokens"] - generated_before
    assert 2 * (1 + 3 * (MAX_TOKENS - 1)) <= generated <= 2 * 3 * MAX_TOKENS
    assert all(len(s.output_token_ids) == MAX_TOKENS and s.finish_reason == "length"
               for o in outputs for s in o.sequences)
    tokenizer = llm.get_tokenizer()
    for include in (False, True):
        outputs = llm.beam_search([{"prompt_token_ids": p} for p in prompts],
                                  BeamSearchParams(beam_width=4, max_tokens=MAX_TOKENS,
                                                   include_stop_str_in_output=include))
        for s in (s for o in outputs for s in o.sequences):
            ids = s.output_token_ids
            if s.finish_reason == "stop" and not include:
                ids = ids[:-1]
            assert s.text == tokenizer.decode(ids)


def test_beam_search_mixed_with_generate_and_text_prompts(eos_model, prompts):
    """Beam searches share the engine with ordinary requests; a text prompt works."""
    from pagedllm import BeamSearchParams, SamplingParams

    model_dir, _ = eos_model
    llm = make_llm(model_dir, block_size=4)
    engine = llm.llm_engine
    ref = llm.generate([{"prompt_token_ids": p} for p in prompts], SamplingParams(temperature=0, max_tokens=8),
                       use_tqdm=False)
    beam_ref = llm.beam_search([{"prompt_token_ids": p} for p in prompts], BeamSearchParams(beam_width=2, max_tokens=6))
    for i, p in enumerate(prompts):
        engine.add_request(f"g{i}", {"prompt_token_ids": p}, SamplingParams(temperature=0, max_tokens=8))
        engine.add_beam_search_request(f"b{i}", {"prompt_token_ids": p}, BeamSearchParams(beam_width=2, max_tokens=6))
    finished, beams = {}, {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                finished[out.request_id] = out
        for i in range(len(prompts)):
            got = engine.take_beam_search_output(f"b{i}")
            if got is not None:
                beams[i] = got
    for i in range(len(prompts)):
        assert finished[f"g{i}"].outputs[0].token_ids == ref[i].outputs[0].token_ids
        assert [s.tokens for s in beams[i].sequences] == [s.tokens for s in beam_ref[i].sequences]
    text = llm.beam_search(["hello"], BeamSearchParams(beam_width=2, max_tokens=4))[0]
    assert len(text.sequences) == 2 and all(s.text is not None for s in text.sequences)
    assert engine.get_stats()["num_kv_blocks_used"] == 0


def test_beam_search_abort_and_bad_input(eos_model, prompts):
    from pagedllm import BeamSearchParams

    model_dir, _ = eos_model
    llm = make_llm(model_dir, block_size=4, num_kv_blocks=64, max_num_seqs=8)
    engine = llm.llm_engine
    engine.add_beam_search_request("b", {"prompt_token_ids": prompts[2]}, BeamSearchParams(beam_width=3, max_tokens=8))
    engine.step()
    engine.step()
    assert engine.get_stats()["num_kv_blocks_used"] > 0
    assert engine.abort_request("b")
    while engine.has_unfinished_requests() or engine.get_stats()["num_kv_blocks_used"]:
        engine.step()
    assert engine.take_beam_search_output("b") is None
    with pytest.raises(ValueError, match="beam_width"):
        BeamSearchParams(beam_width=0, max_tokens=4)
    with pytest.raises(ValueError, match="early_stopping"):
        BeamSearchParams(beam_width=2, max_tokens=4, early_stopping="sometimes")
    with pytest.raises(ValueError, match="max_num_seqs"):
        llm.beam_search([[1, 2]], BeamSearchParams(beam_width=9, max_tokens=4))
    with pytest.raises(ValueError, match="KV blocks"):
        llm.beam_search([[1, 2]], BeamSearchParams(beam_width=8, max_tokens=40))
    with pytest.raises(ValueError, match="vocabulary"):
        llm.beam_search([[1, 100000]], BeamSearchParams(beam_width=2, max_tokens=4))
    assert llm.beam_search([[1, 2]], BeamSearchParams(beam_width=2, max_tokens=2))[0].sequences
    assert engine.get_stats()["num_kv_blocks_used"] == 0
