"""The Python surface on the demo model: LLM.generate / chat, LLMEngine streaming and abort,
n > 1, stop strings through the engine, logprobs shapes, the CLI, and no torch at run time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pagedllm import LLM, RequestOutput, SamplingParams
from pagedllm.engine import LLMEngine
from pagedllm.sampling_params import RequestOutputKind

GREEDY = dict(temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def llm() -> LLM:
    return LLM("demo", max_num_seqs=16, num_kv_blocks=256, log_stats=False)


def test_generate_strings_keeps_order_and_detokenizes(llm: LLM) -> None:
    prompts = ["Hello", "The quick brown fox jumps", "a"]
    outs = llm.generate(prompts, SamplingParams(max_tokens=12, **GREEDY), use_tqdm=False)
    tokenizer = llm.get_tokenizer()
    assert [o.prompt for o in outs] == prompts
    for prompt, out in zip(prompts, outs):
        assert isinstance(out, RequestOutput) and out.finished
        assert out.prompt_token_ids == tokenizer.encode(prompt)
        completion = out.outputs[0]
        assert len(completion.token_ids) == 12
        assert completion.finish_reason == "length"
        assert completion.text == tokenizer.decode(completion.token_ids, skip_special_tokens=True)


def test_token_id_prompts_equal_text_prompts(llm: LLM) -> None:
    params = SamplingParams(max_tokens=8, **GREEDY)
    by_text = llm.generate("Paged attention", params, use_tqdm=False)[0]
    by_ids = llm.generate({"prompt_token_ids": by_text.prompt_token_ids}, params,
                          use_tqdm=False)[0]
    assert by_ids.outputs[0].token_ids == by_text.outputs[0].token_ids


def test_params_list_must_match_prompts(llm: LLM) -> None:
    with pytest.raises(ValueError):
        llm.generate(["a", "b"], [SamplingParams()], use_tqdm=False)


def test_parallel_sampling_equals_separate_seeded_requests(llm: LLM) -> None:
    params = SamplingParams(n=3, seed=11, temperature=1.0, max_tokens=10, ignore_eos=True)
    together = llm.generate("Once upon a time", params, use_tqdm=False)[0]
    assert [c.index for c in together.outputs] == [0, 1, 2]
    for i, completion in enumerate(together.outputs):
        alone = llm.generate("Once upon a time",
                             SamplingParams(seed=11 + i, temperature=1.0, max_tokens=10,
                                            ignore_eos=True), use_tqdm=False)[0]
        assert completion.token_ids == alone.outputs[0].token_ids
    assert len({tuple(c.token_ids) for c in together.outputs}) > 1


def test_stop_string_cuts_text_across_tokens(llm: LLM) -> None:
    base = llm.generate("Hello", SamplingParams(max_tokens=24, **GREEDY), use_tqdm=False)[0]
    text = base.outputs[0].text
    assert len(text) >= 8
    stop = text[4:7]
    cut = text.index(stop)
    out = llm.generate("Hello", SamplingParams(max_tokens=24, stop=[stop], **GREEDY),
                       use_tqdm=False)[0].outputs[0]
    assert out.text == text[:cut]
    assert out.finish_reason == "stop" and out.stop_reason == stop
    kept = llm.generate("Hello", SamplingParams(max_tokens=24, stop=[stop],
                                                include_stop_str_in_output=True, **GREEDY),
                        use_tqdm=False)[0].outputs[0]
    assert kept.text == text[:cut + len(stop)]


def test_stop_token_ids_report_the_token(llm: LLM) -> None:
    base = llm.generate("Hello", SamplingParams(max_tokens=10, **GREEDY), use_tqdm=False)[0]
    target = base.outputs[0].token_ids[3]
    out = llm.generate("Hello", SamplingParams(max_tokens=10, stop_token_ids=[target], **GREEDY),
                       use_tqdm=False)[0].outputs[0]
    first = base.outputs[0].token_ids.index(target)
    assert out.token_ids == base.outputs[0].token_ids[:first + 1]
    assert out.finish_reason == "stop" and out.stop_reason == target


def test_logprobs_shapes(llm: LLM) -> None:
    out = llm.generate("Hi there", SamplingParams(max_tokens=5, logprobs=3, prompt_logprobs=2,
                                                  **GREEDY), use_tqdm=False)[0]
    completion = out.outputs[0]
    assert len(completion.logprobs) == 5
    total = 0.0
    for token, entry in zip(completion.token_ids, completion.logprobs):
        assert token in entry and 3 <= len(entry) <= 4
        assert entry[token].rank == 1  # greedy picks the top token
        total += entry[token].logprob
    assert completion.cumulative_logprob == pytest.approx(total, abs=1e-4)
    assert out.prompt_logprobs[0] is None
    assert len(out.prompt_logprobs) == len(out.prompt_token_ids)
    for token, entry in zip(out.prompt_token_ids[1:], out.prompt_logprobs[1:]):
        assert token in entry


def test_chat_renders_the_template(llm: LLM) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    out = llm.chat(messages, SamplingParams(max_tokens=6, **GREEDY), use_tqdm=False)[0]
    rendered = llm.get_tokenizer().apply_chat_template(messages, add_generation_prompt=True)
    assert out.prompt == rendered
    assert len(out.outputs[0].token_ids) == 6


def test_oversize_prompt_is_rejected_and_llm_keeps_working(llm: LLM) -> None:
    too_long = [65] * (llm.llm_engine.max_model_len + 1)
    with pytest.raises(ValueError, match=str(llm.llm_engine.max_model_len)):
        llm.generate({"prompt_token_ids": too_long}, SamplingParams(max_tokens=2), use_tqdm=False)
    out = llm.generate("still alive", SamplingParams(max_tokens=3, **GREEDY), use_tqdm=False)
    assert len(out[0].outputs[0].token_ids) == 3
    assert llm.llm_engine.get_stats()["num_kv_blocks_used"] == 0


def test_engine_streams_deltas_and_abort_frees_blocks() -> None:
    engine = LLMEngine("demo", max_num_seqs=4, num_kv_blocks=64, log_stats=False)
    delta = SamplingParams(max_tokens=20, output_kind=RequestOutputKind.DELTA, **GREEDY)
    engine.add_request("keep", "streaming", delta)
    engine.add_request("drop", "aborted midway", delta)
    pieces: list[str] = []
    steps = 0
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.request_id == "keep":
                pieces.append(out.outputs[0].text)
            else:
                assert out.request_id == "drop"
        steps += 1
        if steps == 5:
            assert engine.abort_request("drop")
            assert not engine.abort_request("drop")
    offline = LLM("demo", log_stats=False).generate(
        "streaming", SamplingParams(max_tokens=20, **GREEDY), use_tqdm=False)[0]
    assert "".join(pieces) == offline.outputs[0].text  # the deltas add up to the whole text
    stats = engine.get_stats()
    assert stats["num_kv_blocks_used"] == 0 and stats["num_running"] == 0


def test_cli_generate_and_version() -> None:
    run = subprocess.run([sys.executable, "-m", "pagedllm", "generate", "--model", "demo",
                          "--max-tokens", "5", "--temperature", "0", "Hello"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Hello" in run.stdout
    version = subprocess.run([sys.executable, "-m", "pagedllm", "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "pagedllm" in version.stdout


def test_cli_reports_bad_model_cleanly(tmp_path) -> None:
    run = subprocess.run([sys.executable, "-m", "pagedllm", "generate", "--model",
                          str(tmp_path / "missing"), "Hello"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "missing" in run.stderr


def test_serving_path_does_not_import_torch() -> None:
    code = ("import sys; from pagedllm import LLM, SamplingParams; "
            "LLM('demo', log_stats=False).generate('x', SamplingParams(max_tokens=2), "
            "use_tqdm=False); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
