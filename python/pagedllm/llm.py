"""LLM: offline batch generation with vLLM's interface."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

from pagedllm.beam_search import BeamSearchOutput, BeamSearchParams, run_beam_search
from pagedllm.chat_template import Message
from pagedllm.engine import LLMEngine
from pagedllm.inputs import PromptType, as_prompt_list
from pagedllm.outputs import RequestOutput
from pagedllm.sampling_params import RequestOutputKind, SamplingParams
from pagedllm.tokenizer import Tokenizer
from pagedllm.vllm_compat import check_vllm_kwargs

SamplingParamsArg = Optional[Union[SamplingParams, Sequence[SamplingParams]]]


class LLM:
    """A model loaded for offline generation: ``LLM("demo").generate("Hello")``.

    ``model`` is a local directory, a Hugging Face id (cached copies work offline) or
    ``"demo"``. ``device`` is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``gpu_memory_utilization``,
    ``enforce_eager``, ``attention_backend`` and ``cuda_graph_sizes`` tune the GPU backend.
    Other vLLM options are accepted where harmless (with a warning) and rejected
    where they would change results (e.g. ``tensor_parallel_size=2``).
    """

    def __init__(self, model: str, tokenizer: str | None = None, *, dtype: str = "auto",
                 max_model_len: int | None = None, max_num_seqs: int = 256,
                 max_num_batched_tokens: int | None = None, block_size: int = 16,
                 enable_chunked_prefill: bool = True, enable_prefix_caching: bool = True,
                 seed: int | None = 0,
                 num_kv_blocks: int | None = None, kv_cache_memory_bytes: int | None = None,
                 num_threads: int | None = None, revision: str | None = None,
                 tokenizer_revision: str | None = None, download_dir: str | None = None,
                 log_stats: bool = True, device: str = "cpu",
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False,
                 attention_backend: str = "auto", cuda_graph_sizes: Sequence[int] | None = None,
                 **kwargs: Any) -> None:
        check_vllm_kwargs(kwargs)
        self.llm_engine = LLMEngine(
            model, tokenizer, dtype=dtype, max_model_len=max_model_len,
            max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
            block_size=block_size, enable_chunked_prefill=enable_chunked_prefill,
            enable_prefix_caching=enable_prefix_caching, seed=seed,
            num_kv_blocks=num_kv_blocks, kv_cache_memory_bytes=kv_cache_memory_bytes,
            num_threads=num_threads, revision=revision, tokenizer_revision=tokenizer_revision,
            download_dir=download_dir, log_stats=log_stats, device=device,
            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
            attention_backend=attention_backend,
            cuda_graph_sizes=None if cuda_graph_sizes is None else list(cuda_graph_sizes))
        self._request_counter = itertools.count()
        self._default_params: SamplingParams | None = None

    def get_tokenizer(self) -> Tokenizer:
        return self.llm_engine.tokenizer

    def reset_prefix_cache(self) -> bool:
        """Drops every cached prefix block. False (nothing dropped) while requests hold KV
        blocks, as in vLLM."""
        return self.llm_engine.reset_prefix_cache()

    def get_default_sampling_params(self) -> SamplingParams:
        """The model's generation_config.json defaults, as vLLM applies them."""
        if self._default_params is None:
            self._default_params = self.llm_engine.default_sampling_params()
        return self._default_params

    def generate(self, prompts: PromptType | Sequence[PromptType],
                 sampling_params: SamplingParamsArg = None,
                 use_tqdm: bool = True) -> list[RequestOutput]:
        """Completes every prompt; the outputs come back in the order of ``prompts``.

        A prompt is a string, a list of token ids, ``{"prompt": str}`` or
        ``{"prompt_token_ids": [...]}``. ``sampling_params`` is one SamplingParams for all
        prompts or a list with one per prompt. Raises ValueError for a bad prompt or
        parameter (nothing of the batch is left running).
        """
        prompt_list = as_prompt_list(prompts)
        params_list = self._params_per_prompt(sampling_params, len(prompt_list))
        return self._run(prompt_list, params_list, use_tqdm)

    def beam_search(self, prompts: PromptType | Sequence[PromptType],
                    params: BeamSearchParams) -> list[BeamSearchOutput]:
        """Beam search over every prompt (vLLM's interface, Hugging Face transformers'
        semantics: see pagedllm.beam_search); one BeamSearchOutput per prompt, in order, with
        ``params.beam_width`` sequences each, best score first."""
        counter = (f"beam-{i}" for i in self._request_counter)
        return run_beam_search(self.llm_engine, as_prompt_list(prompts), params, counter)

    def chat(self, messages: list[Message] | list[list[Message]],
             sampling_params: SamplingParamsArg = None, use_tqdm: bool = True,
             chat_template: str | None = None, add_generation_prompt: bool = True,
             continue_final_message: bool = False,
             tools: list[dict[str, Any]] | None = None,
             chat_template_kwargs: dict[str, Any] | None = None) -> list[RequestOutput]:
        """Generates replies to one conversation (a list of {"role", "content"} dicts) or to
        a list of conversations, rendered with the model's or the given chat template."""
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty conversation or list of them")
        conversations = [messages] if isinstance(messages[0], dict) else messages
        tokenizer = self.get_tokenizer()
        prompts: list[PromptType] = []
        for conversation in conversations:
            text = tokenizer.apply_chat_template(
                conversation, add_generation_prompt=add_generation_prompt,
                chat_template=chat_template, continue_final_message=continue_final_message,
                tools=tools, **(chat_template_kwargs or {}))
            prompts.append({"prompt": text,
                            "prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)})
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    def _params_per_prompt(self, sampling_params: SamplingParamsArg,
                           count: int) -> list[SamplingParams]:
        if sampling_params is None:
            return [self.get_default_sampling_params()] * count
        if isinstance(sampling_params, SamplingParams):
            return [sampling_params] * count
        params_list = list(sampling_params)
        if len(params_list) != count:
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        for params in params_list:
            if not isinstance(params, SamplingParams):
                raise TypeError(f"sampling_params must be SamplingParams, "
                                f"got {type(params).__name__}")
        return params_list

    def _run(self, prompts: list[PromptType], params_list: list[SamplingParams],
             use_tqdm: bool) -> list[RequestOutput]:
        engine = self.llm_engine
        request_ids: list[str] = []
        results: dict[str, RequestOutput] = {}
        progress = _Progress(len(prompts)) if use_tqdm and prompts else None
        try:
            for prompt, params in zip(prompts, params_list):
                request_id = str(next(self._request_counter))
                final_only = params.clone(output_kind=RequestOutputKind.FINAL_ONLY)
                engine.add_request(request_id, prompt, final_only)
                request_ids.append(request_id)
            pending = set(request_ids)
            while pending:
                if not engine.has_unfinished_requests():
                    raise RuntimeError(f"requests {sorted(pending)} vanished from the engine")
                for output in engine.step():
                    if output.finished and output.request_id in pending:
                        pending.discard(output.request_id)
                        results[output.request_id] = output
                        if progress is not None:
                            progress.update(output)
        except BaseException:
            for request_id in request_ids:
                if request_id not in results:
                    engine.abort_request(request_id)
            raise
        finally:
            if progress is not None:
                progress.close()
        return [results[request_id] for request_id in request_ids]


class _Progress:
    """A tqdm bar over finished requests with the running token rates."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc="Processed prompts", unit="req",
                         dynamic_ncols=True)
        self._start = time.perf_counter()
        self._prompt_tokens = 0
        self._output_tokens = 0

    def update(self, output: RequestOutput) -> None:
        self._prompt_tokens += len(output.prompt_token_ids)
        self._output_tokens += sum(len(o.token_ids) for o in output.outputs)
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._bar.set_postfix_str(
            f"est. speed input: {self._prompt_tokens / elapsed:.2f} toks/s, "
            f"output: {self._output_tokens / elapsed:.2f} toks/s", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
