"""The ``pagedllm`` command: ``pagedllm generate --model PATH_OR_ID "prompt" ...`` and
``pagedllm serve [MODEL]`` (the OpenAI-compatible HTTP server).

The only module that reads the command line and standard input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pagedllm import __version__
from pagedllm.engine_args import EngineArgs

_SAMPLING_FLAGS = ("temperature", "top_p", "top_k", "min_p", "presence_penalty",
                   "frequency_penalty", "repetition_penalty", "min_tokens", "max_tokens",
                   "stop", "stop_token_ids", "n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pagedllm", description="High-throughput LLM inference with a C++ core.")
    parser.add_argument("--version", action="version", version=f"pagedllm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    generate = commands.add_parser(
        "generate", help="complete prompts and print the results",
        description="Complete each prompt and print the generated text.")
    generate.add_argument("prompts", nargs="*", metavar="PROMPT",
                          help="prompt text (default: all of standard input)")
    EngineArgs.add_cli_args(generate, default_model="demo")
    _add_sampling_args(generate)
    generate.set_defaults(handler=run_generate)
    serve = commands.add_parser(
        "serve", help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve MODEL (default: the embedded demo model) over an OpenAI-compatible "
                    "HTTP API: /v1/completions, /v1/chat/completions, /v1/models, /metrics, "
                    "and a chat page at /.")
    serve.add_argument("model_tag", nargs="?", metavar="MODEL",
                       help="model directory, Hugging Face id, or 'demo' (same as --model)")
    EngineArgs.add_cli_args(serve, default_model="demo")
    from pagedllm.entrypoints.openai.server_config import add_server_args

    add_server_args(serve)
    serve.set_defaults(handler=run_serve)
    return parser


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (defaults: the model's generation config)")
    group.add_argument("--max-tokens", type=int, default=64,
                       help="most tokens to generate per prompt (default: %(default)s)")
    group.add_argument("--min-tokens", type=int, help="tokens before EOS may stop a sample")
    group.add_argument("--temperature", type=float, help="0 for greedy (default: 1)")
    group.add_argument("--top-p", type=float, help="nucleus sampling mass (default: 1)")
    group.add_argument("--top-k", type=int, help="keep the k most likely tokens (0: all)")
    group.add_argument("--min-p", type=float, help="drop tokens below min_p x the top one")
    group.add_argument("--presence-penalty", type=float)
    group.add_argument("--frequency-penalty", type=float)
    group.add_argument("--repetition-penalty", type=float)
    group.add_argument("--stop", action="append", help="stop string (repeatable)")
    group.add_argument("--stop-token-ids", type=int, nargs="+", metavar="ID")
    group.add_argument("--ignore-eos", action="store_true", help="keep going after EOS")
    group.add_argument("-n", "--n", type=int, help="samples per prompt (default: 1)")
    group.add_argument("--chat", action="store_true",
                       help="send each prompt as a user message through the chat template")


def _sampling_params(llm: Any, args: argparse.Namespace) -> Any:
    overrides = {name: getattr(args, name) for name in _SAMPLING_FLAGS
                 if getattr(args, name) is not None}
    if args.ignore_eos:
        overrides["ignore_eos"] = True
    return llm.get_default_sampling_params().clone(**overrides)


def run_generate(args: argparse.Namespace) -> int:
    from pagedllm.llm import LLM

    prompts = list(args.prompts)
    if not prompts:
        if sys.stdin.isatty():
            print("pagedllm generate: error: give a prompt (or pipe one on standard input)",
                  file=sys.stderr)
            return 2
        prompts = [sys.stdin.read().rstrip("\n")]
    engine_args = EngineArgs.from_cli_args(args)
    llm = LLM(**vars(engine_args))
    params = _sampling_params(llm, args)
    use_tqdm = len(prompts) > 1
    if args.chat:
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        outputs = llm.chat(conversations, params, use_tqdm=use_tqdm)
    else:
        outputs = llm.generate(prompts, params, use_tqdm=use_tqdm)
    for prompt, output in zip(prompts, outputs):
        print(f"Prompt: {prompt!r}")
        for completion in output.outputs:
            if len(output.outputs) > 1:
                print(f"Sample {completion.index}:")
            print(completion.text)
        print()
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from pagedllm.entrypoints.openai.api_server import run_server

    if args.model_tag is not None:
        if args.model not in ("demo", args.model_tag):
            print("pagedllm serve: error: give the model once (MODEL or --model)",
                  file=sys.stderr)
            return 2
        args.model = args.model_tag
    return run_server(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, TypeError, MemoryError, ImportError,
            PermissionError) as exc:
        print(f"pagedllm: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
