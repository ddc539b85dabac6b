"""BudgetForcedServer: an OpenAI-compatible server with budget forcing (`thinkube serve`)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from thinkube.api.resources.common import (GPU_RESOURCE, CustomResource, Model, ModelURI, Names, ObjectName,
                                           PrinterColumn, Rule, Status, WorkloadSpec, exactly_one)


class ModelSource(Model):
    """The served model: a URI, or the output of an SFTRun in the same namespace."""

    rules = (exactly_one("spec.model", uri="uri", fromSFTRun="from_sft_run"),)
    uri: ModelURI | None = None
    from_sft_run: ObjectName | None = Field(None, alias="fromSFTRun", description=(
        "name of an SFTRun; the server waits (condition WaitingForInput) until it has succeeded"))


class ThinkingBudget(Model):
    """Budget forcing controls (s1 section 3), in tokens of the served tokenizer."""

    rules = (Rule(
        "!has(self.maxThinkingTokens) || self.minThinkingTokens <= self.maxThinkingTokens",
        "minThinkingTokens must be <= maxThinkingTokens", field_path=".minThinkingTokens",
        check=lambda b: b.max_thinking_tokens is None or b.min_thinking_tokens <= b.max_thinking_tokens,
    ),)
    max_thinking_tokens: int | None = Field(None, ge=1, le=1_048_576, description=(
        "force the end of thinking after this many tokens; unset: no cap"))
    min_thinking_tokens: int = Field(0, ge=0, le=1_048_576, description=(
        "suppress the end of thinking (append ignoreString) before this many tokens"))
    num_ignore: int = Field(0, ge=0, le=64, description="times to suppress an early end of thinking")


class BudgetDefaults(ThinkingBudget):
    """Server-wide defaults; each request may override them."""

    ignore_string: str = Field("Wait", max_length=256, description="appended when an early end of thinking is suppressed")
    final_answer_prefix: str = Field("Final Answer:", max_length=256, description=(
        "appended after a forced end of thinking; empty to disable"))


class BudgetForcedServerSpec(WorkloadSpec):
    model: ModelSource
    engine: Literal["vllm", "transformers", "demo-teacher"] = Field("vllm", description=(
        "vllm for real models, transformers for tiny ones; demo-teacher: the demo's synthetic teacher, a program "
        "that writes the demo task's traces (no model weights)"))
    budget_forcing: Literal["engine", "resubmit"] = Field("engine", description=(
        "vllm: engine forces budgets inside the engine (one request per turn); resubmit re-submits the "
        "context at each extension (needed with speculative decoding). transformers always resubmits"))
    chat_format: Literal["s1", "think-tags"] = Field("s1", description=(
        "s1: <|im_start|>think / <|im_start|>answer; think-tags: <think>...</think>"))
    replicas: int | None = Field(None, ge=0, le=1024, description=(
        "pods; unset: start with 1 and leave the count to whoever scales the Deployment"))
    autoscaling: bool = Field(False, description=(
        "an autoscaler owns the Deployment's replicas: the operator never changes them"))
    gpus: int = Field(1, ge=0, le=64, description="GPUs per pod (tensor parallel size)")
    gpu_resource: str | None = Field(None, min_length=1, description=(
        f"the extended resource name of a GPU; default: the operator's (the chart's gpu.resourceName, {GPU_RESOURCE})"))
    port: int = Field(8000, ge=1024, le=65535)
    max_model_len: int = Field(32768, ge=128, le=1_048_576, description="context length in tokens")
    served_model_name: str | None = Field(None, min_length=1, description="the name clients send as `model`")
    startup_timeout_seconds: int = Field(1800, ge=30, le=86_400, description=(
        "how long loading the model may take before the pod is restarted (large models take minutes)"))
    budget: BudgetDefaults = Field(default_factory=BudgetDefaults)


class BudgetForcedServerStatus(Status):
    endpoint: str | None = Field(None, description="base URL inside the cluster (OpenAI API under /v1)")
    replicas: int | None = None
    ready_replicas: int | None = None
    ready: str | None = Field(None, description="ready/desired pods")
    selector: str | None = Field(None, description="label selector of the pods (scale subresource)")


class BudgetForcedServer(CustomResource):
    """An OpenAI-compatible server with budget forcing: a Deployment and Service running `thinkube serve`."""

    names = Names(
        kind="BudgetForcedServer", plural="budgetforcedservers", short="bfs", max_name_length=63, scale=True,
        columns=(
            PrinterColumn("Ready", ".status.ready"),
            PrinterColumn("Engine", ".spec.engine"),
            PrinterColumn("Endpoint", ".status.endpoint", priority=1),
        ),
    )
    spec: BudgetForcedServerSpec
    status: BudgetForcedServerStatus = Field(default_factory=BudgetForcedServerStatus)
