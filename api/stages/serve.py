"""`thinkube serve`'s settings: what a BudgetForcedServer's spec holds, and what a process adds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinkube.api.model import Model, Rule
from thinkube.api.stages.train import ChatFormatName

EngineName = Literal["auto", "vllm", "transformers", "demo-teacher"]


class ThinkingBudget(Model):
    """Budget forcing controls (s1 section 3), in tokens of the served tokenizer."""

    rules = (
        Rule(
            "!has(self.maxThinkingTokens) || self.minThinkingTokens <= self.maxThinkingTokens",
            "minThinkingTokens must be <= maxThinkingTokens",
            field_path=".minThinkingTokens",
            check=lambda b: b.max_thinking_tokens is None or b.min_thinking_tokens <= b.max_thinking_tokens,
        ),
    )
    max_thinking_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1_048_576,
        description=("force the end of thinking after this many tokens; unset: no cap"),
    )
    min_thinking_tokens: int = Field(
        default=0,
        ge=0,
        le=1_048_576,
        description=("suppress the end of thinking (append ignoreString) before this many tokens"),
    )
    num_ignore: int = Field(default=0, ge=0, le=64, description="times to suppress an early end of thinking")


class BudgetDefaults(ThinkingBudget):
    """Server-wide defaults; each request may override them."""

    ignore_string: str = Field(
        default="Wait", max_length=256, description=("appended when an early end of thinking is suppressed")
    )
    final_answer_prefix: str = Field(
        default="Final Answer:",
        max_length=256,
        description=("appended after a forced end of thinking; empty to disable"),
    )


class ServeSettings(Model):
    """How the model is served; a BudgetForcedServer's spec embeds these fields."""

    engine: EngineName = Field(
        default="auto",
        description=(
            "auto: vLLM when installed (the image has it), else transformers; transformers suits tiny models; "
            "demo-teacher: the demo's synthetic teacher, a program that writes the demo task's traces"
        ),
    )
    budget_forcing: Literal["engine", "resubmit"] = Field(
        default="engine",
        description=(
            "vllm: engine forces budgets inside the engine (one request per turn); resubmit re-submits the "
            "context at each extension (needed with speculative decoding). transformers always resubmits"
        ),
    )
    chat_format: ChatFormatName = Field(
        default="s1", description=("s1: <|im_start|>think / <|im_start|>answer; think-tags: <think>...</think>")
    )
    port: int = Field(default=8000, ge=1024, le=65535)
    max_model_len: int | None = Field(
        default=None, ge=128, le=1_048_576, description=("context length in tokens; default: the model's")
    )
    served_model_name: str | None = Field(
        default=None, min_length=1, description=("the name clients send as `model`; default: the model URI")
    )
    budget: BudgetDefaults = Field(default_factory=BudgetDefaults)


class ServeConfig(ServeSettings):
    """A whole `thinkube serve` process: the settings, the model and the process's limits."""

    model: str = Field(
        default="tiny", min_length=1, description=("'tiny', a folder, pvc://claim/path, or hf://org/name[@rev]")
    )
    host: str = "127.0.0.1"
    dtype: str = Field(default="auto", description="vLLM dtype (auto, bfloat16, float32); transformers: float32")
    default_max_tokens: int = Field(default=4096, ge=1, description="completion cap when a request gives none")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_concurrency: int = Field(default=256, ge=1, description="generations in flight; more requests wait")
    prefix_caching: bool = Field(default=True, description="vLLM prefix caching (off only for benchmarks)")
    kv_cache_bytes: int | None = Field(default=None, ge=1, description="vLLM: KV cache size (CPU: default 1 GiB)")
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description=("vLLM on GPU: fraction of GPU memory")
    )
    tensor_parallel_size: int = Field(
        default=1,
        ge=1,
        le=64,
        description=("vLLM on GPU: shard the model over this many GPUs of the pod (a BudgetForcedServer's spec.gpus)"),
    )
    graceful_timeout: float = Field(default=600, ge=0, description="seconds to finish in-flight requests on SIGTERM")
