"""`thinkube serve`: the budget-forcing server on vLLM or transformers.

Every option can also come from a YAML/JSON file (`--config`, and $THINKUBE_CONFIG in pods,
which is how a BudgetForcedServer's pods get theirs) keyed by the field names of ServeConfig
(thinkube.api.stages.serve); the command line wins."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys

from thinkube.api.stages.loader import BadConfig, load
from thinkube.api.stages.serve import BudgetDefaults, ServeConfig
from thinkube.constants import ENV_CONFIG, EXIT_BAD_CONFIG
from thinkube.workloads.formats.chat import CHAT_FORMATS

log = logging.getLogger(__name__)


BUDGET = tuple(BudgetDefaults.model_fields)  # flags that set ServeConfig.budget


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"YAML/JSON file of settings (over ${ENV_CONFIG}'s); flags override both")
    p.add_argument("--model", help="'tiny' (default), a folder, pvc://claim/path, or hf://org/name[@rev]")
    p.add_argument("--served-model-name", help="the name clients ask for (default: the --model value)")
    p.add_argument(
        "--engine",
        choices=("auto", "vllm", "transformers", "demo-teacher"),
        help="auto (default): vLLM when installed, else transformers; demo-teacher: the demo's synthetic "
        "teacher (a program writing the demo task's traces, with --model's tokenizer)",
    )
    p.add_argument("--host", help="default 127.0.0.1")
    p.add_argument("--port", type=int, help="default 8000")
    p.add_argument(
        "--chat-format",
        choices=tuple(CHAT_FORMATS),
        help="s1 (default): <|im_start|>think/<|im_start|>answer; think-tags: <think>...</think>",
    )
    p.add_argument("--dtype", help="vLLM dtype (auto, bfloat16, float32); transformers: float32")
    p.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    p.add_argument("--default-max-tokens", type=int, help="completion cap when a request gives none (default 4096)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 4 MiB)")
    p.add_argument("--max-concurrency", type=int, help="generations in flight; more requests wait (default 256)")
    p.add_argument("--no-prefix-caching", action="store_true", help="vLLM: turn prefix caching off (benchmarks)")
    p.add_argument(
        "--budget-forcing",
        choices=("engine", "resubmit"),
        help="vLLM: force budgets inside the engine (default; one request per turn) or re-submit the "
        "context at every extension (needed with speculative decoding)",
    )
    p.add_argument("--kv-cache-bytes", type=int, help="vLLM: KV cache size (CPU: default 1 GiB)")
    p.add_argument("--gpu-memory-utilization", type=float, help="vLLM on GPU: fraction of GPU memory")
    p.add_argument(
        "--tensor-parallel-size",
        type=int,
        help="vLLM on GPU: shard the model over this many GPUs of the pod (a BudgetForcedServer's spec.gpus)",
    )
    p.add_argument(
        "--graceful-timeout", type=float, help="seconds to finish in-flight requests on SIGTERM (default 600)"
    )
    b = p.add_argument_group("budget defaults", "for requests that omit the budget-forcing fields")
    b.add_argument("--max-thinking-tokens", type=int)
    b.add_argument("--min-thinking-tokens", type=int)
    b.add_argument("--num-ignore", type=int)
    b.add_argument("--ignore-string")
    b.add_argument("--final-answer-prefix")


def resolve_config(args: argparse.Namespace) -> ServeConfig:
    """Command line over --config file over $THINKUBE_CONFIG file over ServeConfig defaults."""
    flags = {name: getattr(args, name, None) for name in ServeConfig.model_fields if name != "budget"}
    flags["budget"] = {name: getattr(args, name) for name in BUDGET}
    flags["prefix_caching"] = False if args.no_prefix_caching else None
    return load(ServeConfig, flags, args.config)


def build_engine(cfg: ServeConfig):
    from thinkube.workloads.models import resolve_model

    path, revision = resolve_model(cfg.model)
    name = cfg.served_model_name or cfg.model
    kind = cfg.engine
    if kind == "demo-teacher":
        from thinkube.workloads.demo.teacher import SyntheticTeacher

        return SyntheticTeacher(path, name)
    if kind == "auto":
        kind = "vllm" if importlib.util.find_spec("vllm") else "transformers"
    if kind == "vllm":
        from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine, on_cpu

        kv = cfg.kv_cache_bytes or (1 << 30 if on_cpu() else None)
        return VLLMEngine(
            path,
            name,
            revision,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            prefix_caching=cfg.prefix_caching,
            kv_cache_bytes=kv,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            tensor_parallel_size=cfg.tensor_parallel_size,
            in_engine_forcing=cfg.budget_forcing == "engine",
        )
    from thinkube.workloads.serving.engines.hf import TransformersEngine

    return TransformersEngine(path, name, revision, max_model_len=cfg.max_model_len)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from thinkube.workloads.serving.app import ServerConfig, create_app

    try:
        cfg = resolve_config(args)
    except BadConfig as e:
        print(f"thinkube serve: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    config = ServerConfig(
        fmt=CHAT_FORMATS[cfg.chat_format],
        default_max_tokens=cfg.default_max_tokens,
        max_body_bytes=cfg.max_body_bytes,
        max_concurrency=cfg.max_concurrency,
        defaults=cfg.budget.model_dump(exclude_none=True),
    )
    app = create_app(build_engine(cfg), config)
    log.info("serving %s on http://%s:%d", cfg.model, cfg.host, cfg.port)
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            log_level="info",
            timeout_graceful_shutdown=cfg.graceful_timeout,  # type: ignore[arg-type]  # uvicorn says int; asyncio.timeout takes float
        )
    ).run()
    return 0
