"""BudgetForcedServer: an OpenAI-compatible server with budget forcing (`thinkube serve`)."""

from __future__ import annotations

from pydantic import Field

from thinkube.api.model import Model, exactly_one
from thinkube.api.resources.common import (
    GPU_RESOURCE,
    CustomResource,
    ModelURI,
    Names,
    ObjectName,
    PrinterColumn,
    Status,
    WorkloadSpec,
)
from thinkube.api.stages.serve import ServeSettings


class ModelSource(Model):
    """The served model: a URI, or the output of an SFTRun in the same namespace."""

    rules = (exactly_one("spec.model", uri="uri", fromSFTRun="from_sft_run"),)
    uri: ModelURI | None = None
    from_sft_run: ObjectName | None = Field(
        default=None,
        alias="fromSFTRun",
        description=("name of an SFTRun; the server waits (condition WaitingForInput) until it has succeeded"),
    )


class BudgetForcedServerSpec(WorkloadSpec, ServeSettings):
    """The serving settings (thinkube.api.stages.serve), the model and the Deployment's fields."""

    model: ModelSource
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1024,
        description=("pods; unset: start with 1 and leave the count to whoever scales the Deployment"),
    )
    autoscaling: bool = Field(
        default=False, description=("an autoscaler owns the Deployment's replicas: the operator never changes them")
    )
    gpus: int = Field(default=1, ge=0, le=64, description="GPUs per pod, also the tensor-parallel size")
    gpu_resource: str | None = Field(
        default=None,
        min_length=1,
        description=(
            f"the extended resource name of a GPU; default: the operator's (the chart's gpu.resourceName, {GPU_RESOURCE})"
        ),
    )
    startup_timeout_seconds: int | None = Field(
        default=None,
        ge=30,
        le=86_400,
        description=(
            "how long downloading and loading the model may take before the pod is restarted; default: from the size "
            "in the model's name (hf://Qwen/Qwen2.5-32B-Instruct: 10 minutes plus 1 per billion parameters), else "
            "30 minutes"
        ),
    )


class BudgetForcedServerStatus(Status):
    endpoint: str | None = Field(default=None, description="base URL inside the cluster (OpenAI API under /v1)")
    replicas: int | None = None
    ready_replicas: int | None = None
    ready: str | None = Field(default=None, description="ready/desired pods")
    selector: str | None = Field(default=None, description="label selector of the pods (scale subresource)")


class BudgetForcedServer(CustomResource):
    """An OpenAI-compatible server with budget forcing: a Deployment and Service running `thinkube serve`."""

    names = Names(
        kind="BudgetForcedServer",
        plural="budgetforcedservers",
        short="bfs",
        max_name_length=63,
        scale=True,
        columns=(
            PrinterColumn("Ready", ".status.ready"),
            PrinterColumn("Engine", ".spec.engine"),
            PrinterColumn("Endpoint", ".status.endpoint", priority=1),
        ),
    )
    spec: BudgetForcedServerSpec
    status: BudgetForcedServerStatus = Field(default_factory=BudgetForcedServerStatus)
