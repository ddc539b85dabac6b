"""`thinkube serve`: the budget-forcing server on vLLM or transformers."""
from __future__ import annotations

import argparse
import importlib.util
import logging

from thinkube.workloads.formats.chat import CHAT_FORMATS

log = logging.getLogger(__name__)



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny", help="'tiny', a folder, pvc://claim/path, or hf://org/name[@rev]")
    p.add_argument("--served-model-name", help="the name clients ask for (default: the --model value)")
    p.add_argument("--engine", choices=("auto", "vllm", "transformers", "demo-teacher"), default="auto",
                   help="auto: vLLM when installed, else transformers; demo-teacher: the demo's synthetic teacher "
                        "(a program writing the demo task's traces, with --model's tokenizer)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--chat-format", choices=tuple(CHAT_FORMATS), default="s1",
                   help="s1: <|im_start|>think/<|im_start|>answer; think-tags: <think>...</think>")
    p.add_argument("--dtype", default="auto", help="vLLM dtype (auto, bfloat16, float32); transformers: float32")
    p.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    p.add_argument("--default-max-tokens", type=int, default=4096, help="completion cap when a request gives none")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    p.add_argument("--max-concurrency", type=int, default=256, help="generations in flight; more requests wait")
    p.add_argument("--no-prefix-caching", action="store_true", help="vLLM: turn prefix caching off (benchmarks)")
    p.add_argument("--budget-forcing", choices=("engine", "resubmit"), default="engine",
                   help="vLLM: force budgets inside the engine (one request per turn) or re-submit the context "
                        "at every extension (needed with speculative decoding)")
    p.add_argument("--kv-cache-bytes", type=int, help="vLLM: KV cache size (CPU: default 1 GiB)")
    p.add_argument("--gpu-memory-utilization", type=float, help="vLLM on GPU: fraction of GPU memory")
    p.add_argument("--tensor-parallel-size", type=int, default=1,
                   help="vLLM on GPU: shard the model over this many GPUs of the pod (a BudgetForcedServer's spec.gpus)")
    p.add_argument("--graceful-timeout", type=float, default=600, help="seconds to finish in-flight requests on SIGTERM")
    # Server-side defaults for requests that omit the budget fields (the operator passes the
    # BudgetForcedServer spec here).
    p.add_argument("--max-thinking-tokens", type=int)
    p.add_argument("--min-thinking-tokens", type=int)
    p.add_argument("--num-ignore", type=int)
    p.add_argument("--ignore-string")
    p.add_argument("--final-answer-prefix")


def build_engine(args: argparse.Namespace):
    from thinkube.workloads.models import resolve_model

    path, revision = resolve_model(args.model)
    name = args.served_model_name or args.model
    kind = args.engine
    if kind == "demo-teacher":
        from thinkube.workloads.demo.teacher import SyntheticTeacher

        return SyntheticTeacher(path, name)
    if kind == "auto":
        kind = "vllm" if importlib.util.find_spec("vllm") else "transformers"
    if kind == "vllm":
        from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine, on_cpu

        kv = args.kv_cache_bytes or (1 << 30 if on_cpu() else None)
        return VLLMEngine(path, name, revision, dtype=args.dtype, max_model_len=args.max_model_len,
                          prefix_caching=not args.no_prefix_caching, kv_cache_bytes=kv,
                          gpu_memory_utilization=args.gpu_memory_utilization,
                          tensor_parallel_size=args.tensor_parallel_size,
                          in_engine_forcing=args.budget_forcing == "engine")
    from thinkube.workloads.serving.engines.hf import TransformersEngine

    return TransformersEngine(path, name, revision, max_model_len=args.max_model_len)


def budget_defaults(args: argparse.Namespace) -> dict:
    keys = ("max_thinking_tokens", "min_thinking_tokens", "num_ignore", "ignore_string", "final_answer_prefix")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from thinkube.workloads.serving.app import ServerConfig, create_app

    config = ServerConfig(fmt=CHAT_FORMATS[args.chat_format], default_max_tokens=args.default_max_tokens,
                          max_body_bytes=args.max_body_bytes, max_concurrency=args.max_concurrency,
                          defaults=budget_defaults(args))
    app = create_app(build_engine(args), config)
    log.info("serving %s on http://%s:%d", args.model, args.host, args.port)
    uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                                  timeout_graceful_shutdown=args.graceful_timeout)).run()
    return 0
