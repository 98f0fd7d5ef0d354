"""Sampling: seeded reproducibility whatever else is in the batch, filters (top-k, top-p,
min-p) against a reference computed from HF logits, penalties against a reference greedy loop,
logprobs of sampled tokens against HF log_softmax, and the stop rules (EOS, min_tokens,
stop_token_ids, max_tokens, stop strings).

The filter tests sample at temperature 2.5 so that the tiny peaked models spread their mass
over many tokens and the filters actually bite (checked: without the filter, tokens outside the
allowed set do get drawn)."""

from __future__ import annotations

import random

import pytest
import torch

import models
from conftest import llm_engine, make_llm, token_prompts

MODEL = "llama"
VOCAB = 256
LP_ATOL, LP_RTOL = 1e-4, 1e-5
TIE = 2e-3

_REF: dict = {}


def sp(**kw):
    from pagedllm import SamplingParams

    kw.setdefault("ignore_eos", True)
    return SamplingParams(**kw)


def ref_logits(model_dir: str, ids: list[int]) -> torch.Tensor:
    key = (model_dir, tuple(ids))
    if key not in _REF:
        _REF[key] = models.hf_logits(models.load_hf(model_dir), ids)
    return _REF[key]


def batch_prompts(n: int, seed: int, lo: int = 1, hi: int = 40) -> list[list[int]]:
    rng = random.Random(seed)
    return [models.random_prompt(rng, rng.randint(lo, hi), VOCAB) for _ in range(n)]


@pytest.fixture(scope="module")
def model_dir(get_model):
    return get_model(MODEL)


@pytest.fixture(scope="module")
def llm(model_dir):
    return make_llm(model_dir, max_num_batched_tokens=64)


# ------------------------------------------------------------------------------------------
# Seeds


def test_seeded_output_independent_of_batch(model_dir, llm):
    """The same seeded request alone, among 5 others, in another order, under a different
    step budget and under preemption gives identical tokens."""
    target = batch_prompts(1, seed=11, lo=20, hi=20)[0]
    params = sp(temperature=1.0, top_k=40, top_p=0.9, seed=1234, max_tokens=24)
    others = batch_prompts(5, seed=12)
    other_params = [sp(temperature=1.0, seed=s, max_tokens=10 + s) for s in range(4)] + [sp(temperature=0, max_tokens=7)]

    def run(engine_llm, prompts, params_list, index):
        outs = engine_llm.generate(token_prompts(prompts), params_list, use_tqdm=False)
        return list(outs[index].outputs[0].token_ids)

    alone = run(llm, [target], [params], 0)
    assert len(alone) == 24
    mixed = run(llm, [target] + others, [params] + other_params, 0)
    reordered = run(llm, others[:3] + [target] + others[3:], other_params[:3] + [params] + other_params[3:], 3)
    # a second copy of the same prompt with another seed in the same batch
    twins = llm.generate(token_prompts([target, target]), [params, sp(temperature=1.0, top_k=40, top_p=0.9, seed=99,
                                                                    max_tokens=24)], use_tqdm=False)
    assert mixed == alone
    assert reordered == alone
    assert list(twins[0].outputs[0].token_ids) == alone
    small = make_llm(model_dir, max_num_batched_tokens=8, num_kv_blocks=7, block_size=8, max_model_len=64)
    squeezed = run(small, others + [target], other_params + [params], 5)
    assert squeezed == alone
    assert llm_engine(small).stats().num_preemptions > 0


def test_different_seeds_differ_and_same_seed_repeats(llm):
    prompt = batch_prompts(1, seed=13, lo=10, hi=10)[0]
    outs = llm.generate(token_prompts([prompt] * 6),
                        [sp(temperature=1.5, seed=s, max_tokens=20) for s in (1, 2, 3, 4, 5, 1)], use_tqdm=False)
    seqs = [tuple(o.outputs[0].token_ids) for o in outs]
    assert seqs[0] == seqs[5], "same seed, same prompt, same batch: different tokens"
    assert len(set(seqs[:5])) == 5, f"5 seeds gave only {len(set(seqs[:5]))} distinct samples"


def test_unseeded_requests_reproducible_from_engine_seed(model_dir):
    prompts = batch_prompts(3, seed=14)
    a = make_llm(model_dir, seed=7).generate(token_prompts(prompts), sp(temperature=1.5, max_tokens=12), use_tqdm=False)
    b = make_llm(model_dir, seed=7).generate(token_prompts(prompts), sp(temperature=1.5, max_tokens=12), use_tqdm=False)
    c = make_llm(model_dir, seed=8).generate(token_prompts(prompts), sp(temperature=1.5, max_tokens=12), use_tqdm=False)
    ta = [o.outputs[0].token_ids for o in a]
    assert ta == [o.outputs[0].token_ids for o in b]
    assert ta != [o.outputs[0].token_ids for o in c]


# ------------------------------------------------------------------------------------------
# Filters


FILTERS = {
    "top_k3": dict(top_k=3),
    "top_k1": dict(top_k=1),
    "top_p0.5": dict(top_p=0.5),
    "top_p0.9": dict(top_p=0.9),
    "min_p0.1": dict(min_p=0.1),
    "min_p0.3": dict(min_p=0.3),
    "combined": dict(top_k=10, top_p=0.8, min_p=0.05),
}
TEMPERATURE = 2.5


def sample_and_check(llm, model_dir, filt: dict, temperature: float, seed0: int, strict_kw: dict | None = None):
    """Samples 8 prompts x 24 tokens with filt; returns (number of positions, number of tokens
    outside the allowed set of strict_kw (default filt))."""
    prompts = batch_prompts(8, seed=20)
    params = [sp(temperature=temperature, seed=seed0 + i, max_tokens=24, logprobs=1, **filt) for i in range(8)]
    outs = llm.generate(token_prompts(prompts), params, use_tqdm=False)
    positions = outside = 0
    for prompt, out in zip(prompts, outs):
        gen = list(out.outputs[0].token_ids)
        assert len(gen) == 24
        logits = ref_logits(model_dir, prompt + gen)
        logp = torch.log_softmax(logits, dim=-1)
        for i, tok in enumerate(gen):
            row = logits[len(prompt) - 1 + i]
            kw = strict_kw or filt
            allowed = models.allowed_set(row, temperature=temperature, slack=1e-4, **kw)
            if kw.get("min_p") and (kw.get("top_p", 1.0) < 1.0 or kw.get("top_k")):
                # vLLM applies min-p before top-k/top-p, the other common order is after: the
                # two differ only in the top-p nucleus; accept either.
                allowed |= models.allowed_set(row, temperature=temperature, slack=1e-4, min_p_first=True, **kw)
            positions += 1
            outside += tok not in allowed
            # the reported logprob is the raw (untempered) log_softmax
            lp = out.outputs[0].logprobs[i][tok]
            ref = float(logp[len(prompt) - 1 + i][tok])
            assert abs(lp.logprob - ref) <= LP_ATOL + LP_RTOL * abs(ref), (i, lp.logprob, ref)
    return positions, outside


@pytest.mark.parametrize("name", list(FILTERS))
def test_sampled_tokens_within_filter(model_dir, llm, name):
    filt = FILTERS[name]
    positions, outside = sample_and_check(llm, model_dir, filt, TEMPERATURE, seed0=100)
    assert outside == 0, f"{outside} of {positions} sampled tokens outside the {filt} set"


@pytest.mark.parametrize("name", ["top_k3", "top_p0.5", "min_p0.3"])
def test_filter_check_has_teeth(model_dir, llm, name):
    """Without the filter, tokens outside the filtered set are drawn: the check above can fail."""
    positions, outside = sample_and_check(llm, model_dir, {}, TEMPERATURE, seed0=100, strict_kw=FILTERS[name])
    assert outside >= 5, f"only {outside} of {positions} unfiltered samples fall outside {FILTERS[name]}"


def test_degenerate_filters_equal_greedy(model_dir, llm):
    prompts = batch_prompts(4, seed=21)
    greedy = [o.outputs[0].token_ids for o in llm.generate(token_prompts(prompts), sp(temperature=0, max_tokens=16),
                                                           use_tqdm=False)]
    for filt in (dict(top_k=1), dict(top_p=1e-6), dict(min_p=1.0)):
        outs = llm.generate(token_prompts(prompts), sp(temperature=1.0, seed=5, max_tokens=16, **filt), use_tqdm=False)
        assert [o.outputs[0].token_ids for o in outs] == greedy, filt


# ------------------------------------------------------------------------------------------
# Penalties


def reference_greedy(model_dir, prompt, max_tokens, min_tokens=0, stop_ids=(), eos_ids=(), ignore_eos=True,
                     **penalties):
    """Greedy on HF logits with the penalty and stop-masking rules. Returns (tokens, margins,
    stopped_by)."""
    seq, out, margins = list(prompt), [], []
    for _ in range(max_tokens):
        row = models.apply_penalties(ref_logits(model_dir, seq)[-1], prompt, out, **penalties)
        if len(out) < min_tokens:
            for t in list(stop_ids) + ([] if ignore_eos else list(eos_ids)):
                row[t] = -float("inf")
        tok = int(torch.argmax(row))
        margins.append(models.top2_margin(row))
        out.append(tok)
        seq.append(tok)
        if len(out) >= min_tokens and (tok in stop_ids or (not ignore_eos and tok in eos_ids)):
            return out, margins, tok
    return out, margins, None


PENALTIES = {
    "repetition1.8": dict(repetition_penalty=1.8),
    "repetition0.6": dict(repetition_penalty=0.6),
    "presence1.5": dict(presence_penalty=1.5),
    "presence-1": dict(presence_penalty=-1.0),
    "frequency1.2": dict(frequency_penalty=1.2),
    "all": dict(repetition_penalty=1.3, presence_penalty=0.7, frequency_penalty=0.9),
}


@pytest.mark.parametrize("name", list(PENALTIES))
def test_penalties_match_reference_greedy(model_dir, llm, name):
    pen = PENALTIES[name]
    prompts = batch_prompts(6, seed=30, lo=3, hi=30)
    outs = llm.generate(token_prompts(prompts), sp(temperature=0, max_tokens=30, logprobs=0, **pen), use_tqdm=False)
    plain = llm.generate(token_prompts(prompts), sp(temperature=0, max_tokens=30), use_tqdm=False)
    changed = 0
    for prompt, out, base in zip(prompts, outs, plain):
        ours = list(out.outputs[0].token_ids)
        ref, margins, _ = reference_greedy(model_dir, prompt, 30, **pen)
        models.assert_greedy_equal(ours, ref, margins, TIE, f"{name} prompt len {len(prompt)}")
        changed += ours != list(base.outputs[0].token_ids)
        # logprobs are of the raw logits, not the penalized ones
        logp = torch.log_softmax(ref_logits(model_dir, prompt + ours), dim=-1)
        for i, tok in enumerate(ours):
            ref_lp = float(logp[len(prompt) - 1 + i][tok])
            got = out.outputs[0].logprobs[i][tok].logprob
            assert abs(got - ref_lp) <= LP_ATOL + LP_RTOL * abs(ref_lp), (name, i, got, ref_lp)
    assert changed >= 2, f"{name} changed only {changed} of 6 greedy outputs: the test would not notice"


# ------------------------------------------------------------------------------------------
# Stop rules


def test_max_tokens_gives_length(llm):
    outs = llm.generate(token_prompts(batch_prompts(3, seed=40)), sp(temperature=0, max_tokens=5), use_tqdm=False)
    for o in outs:
        assert len(o.outputs[0].token_ids) == 5
        assert o.outputs[0].finish_reason == "length"
        assert o.outputs[0].stop_reason is None


def test_stop_token_ids(model_dir, llm):
    prompt = batch_prompts(1, seed=41, lo=12, hi=12)[0]
    free, _, _ = reference_greedy(model_dir, prompt, 20)
    k = next(i for i in range(2, 20) if free[i] not in free[:i])
    stop = free[k]
    unused = next(t for t in range(3, VOCAB) if t not in free)
    out = llm.generate(token_prompts([prompt]), sp(temperature=0, max_tokens=20, stop_token_ids=[unused, stop]),
                       use_tqdm=False)[0].outputs[0]
    assert list(out.token_ids) == free[:k + 1], "the stop token is kept in the output"
    assert out.finish_reason == "stop"
    assert out.stop_reason == stop


def test_min_tokens_masks_stop_tokens(model_dir, llm):
    prompt = batch_prompts(1, seed=41, lo=12, hi=12)[0]
    free, _, _ = reference_greedy(model_dir, prompt, 20)
    stop = free[1]
    ref, margins, stopped = reference_greedy(model_dir, prompt, 20, min_tokens=6, stop_ids=(stop,))
    out = llm.generate(token_prompts([prompt]), sp(temperature=0, max_tokens=20, min_tokens=6, stop_token_ids=[stop]),
                       use_tqdm=False)[0].outputs[0]
    assert stop not in out.token_ids[:6]
    models.assert_greedy_equal(list(out.token_ids), ref, margins, TIE, "min_tokens")
    assert out.finish_reason == ("stop" if stopped is not None else "length")


@pytest.fixture(scope="module")
def eos_case(model_dir, tmp_path_factory):
    """A copy of the model whose EOS is the token greedy emits 3rd for a probe prompt."""
    for seed in range(50):
        prompt = batch_prompts(1, seed=1000 + seed, lo=8, hi=8)[0]
        free, _, _ = reference_greedy(model_dir, prompt, 16)
        if free[2] not in free[:2] and free[2] > 2:
            eos = free[2]
            path = models.copy_with_config(model_dir, str(tmp_path_factory.mktemp("eos") / "m"), eos_token_id=eos)
            return path, prompt, eos, free
    raise AssertionError("no probe prompt found")


def test_eos_stops_unless_ignored(eos_case, model_dir):
    path, prompt, eos, free = eos_case
    llm = make_llm(path)
    assert list(llm_engine(llm).model_info.eos_token_ids) == [eos]
    stopped, ignored, min6 = llm.generate(
        token_prompts([prompt] * 3),
        [sp(temperature=0, max_tokens=16, ignore_eos=False),
         sp(temperature=0, max_tokens=16, ignore_eos=True),
         sp(temperature=0, max_tokens=16, ignore_eos=False, min_tokens=6)], use_tqdm=False)
    assert list(stopped.outputs[0].token_ids) == free[:3]
    assert stopped.outputs[0].finish_reason == "stop"
    assert stopped.outputs[0].stop_reason is None  # EOS, not a stop_token_id
    assert list(ignored.outputs[0].token_ids) == free
    assert ignored.outputs[0].finish_reason == "length"
    ref, margins, by = reference_greedy(model_dir, prompt, 16, min_tokens=6, eos_ids=(eos,), ignore_eos=False)
    got = list(min6.outputs[0].token_ids)
    assert eos not in got[:6]
    models.assert_greedy_equal(got, ref, margins, TIE, "min_tokens with EOS")
    assert min6.outputs[0].finish_reason == ("stop" if by is not None else "length")


def test_stop_string(model_dir, llm):
    """A stop string cuts the text before it and finishes with stop_reason = the string."""
    prompts = batch_prompts(10, seed=50, lo=5, hi=15)
    outs = llm.generate(token_prompts(prompts), sp(temperature=0, max_tokens=24), use_tqdm=False)
    for prompt, out in zip(prompts, outs):
        text = out.outputs[0].text
        # a 2-character ASCII snippet first occurring in the middle of the text
        for i in range(3, len(text) - 2):
            snippet = text[i:i + 2]
            if snippet.isascii() and snippet.isprintable() and text.find(snippet) == i:
                break
        else:
            continue
        cut = llm.generate(token_prompts([prompt]), sp(temperature=0, max_tokens=24, stop=[snippet]),
                           use_tqdm=False)[0].outputs[0]
        assert cut.text == text[:i]
        assert cut.finish_reason == "stop"
        assert cut.stop_reason == snippet
        assert len(cut.token_ids) < 24
        return
    pytest.fail("no usable stop snippet found in 10 generations")
