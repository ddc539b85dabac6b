"""SFTRun: supervised fine-tuning over N nodes with torchrun + FSDP (`thinkube train`).

Defaults are the s1 recipe: 2 nodes x 8 GPUs, and `spec.training` is the trainer's own
`TrainRecipe` (thinkube.api.stages.train) with its defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator

from thinkube.api.model import Model, Rule, exactly_one
from thinkube.api.resources.common import (
    GPU_RESOURCE,
    ArtifactURI,
    CustomResource,
    JobSpec,
    ModelURI,
    Names,
    ObjectName,
    PrinterColumn,
    Quantity,
    Status,
)
from thinkube.api.stages.train import TrainRecipe


class DatasetSource(Model):
    """Training data: a URI, or the output of a CurationJob in the same namespace."""

    rules = (exactly_one("spec.dataset", uri="uri", fromCurationJob="from_curation_job"),)
    uri: ArtifactURI | None = None
    from_curation_job: ObjectName | None = Field(
        default=None,
        description=("name of a CurationJob; the run waits (condition WaitingForInput) until it has succeeded"),
    )


def _processes(spec: "SFTRunSpec") -> int:
    return spec.nodes * (spec.gpus_per_node or 1) * spec.training.micro_batch_size


class SFTRunSpec(JobSpec):
    rules = JobSpec.rules + (
        Rule(
            "self.training.globalBatchSize % (self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)"
            " * self.training.microBatchSize) == 0",
            "training.globalBatchSize must be a multiple of nodes x gpusPerNode x training.microBatchSize "
            "(the per-step gradient-accumulation count must be whole)",
            field_path=".training.globalBatchSize",
            check=lambda s: s.training.global_batch_size % _processes(s) == 0,
        ),
    )
    base_model: ModelURI = Field(description="the model to fine-tune; fixed once the run has a Job")
    dataset: DatasetSource
    nodes: int = Field(
        default=2, ge=1, le=256, description=("pods, one per node (Indexed Job completions and parallelism)")
    )
    gpus_per_node: int = Field(
        default=8, ge=0, le=64, description=("GPUs each pod requests; 0 runs one CPU process per pod")
    )
    gpu_resource: str | None = Field(
        default=None,
        min_length=1,
        description=(
            f"the extended resource name of a GPU; default: the operator's (the chart's gpu.resourceName, {GPU_RESOURCE})"
        ),
    )
    training: TrainRecipe = Field(default_factory=TrainRecipe)
    max_restarts: int = Field(
        default=3,
        ge=0,
        le=100,
        description=("whole-gang restarts: when any pod fails, every pod is restarted, at most this many times"),
    )
    master_port: int = Field(default=29500, ge=1024, le=65535, description="torchrun rendezvous port")
    shm_size: Quantity | None = Field(default=None, description="size limit of the memory-backed /dev/shm")


# RFC 3339 in UTC, as Kubernetes writes times: 2026-01-02T03:04:05Z (fractions of a second allowed).
UTC_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$"


class TrainingProgress(Model):
    """Where training is, as rank 0 of the trainer reports it to the control plane."""

    # Strict: the control plane validates trainer reports with this model, and a "12" for a
    # step is a trainer bug to refuse, not a number to guess.
    model_config = ConfigDict(strict=True)
    rules = (
        Rule(
            "self.step <= self.totalSteps",
            "step must not exceed totalSteps",
            field_path=".step",
            check=lambda p: p.step <= p.total_steps,
        ),
    )
    step: int = Field(ge=0, description="optimizer steps done (resumed runs count the steps before the restart)")
    total_steps: int = Field(ge=1, description="optimizer steps the run takes in all")
    epoch: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="epochs done, fractional (steps done / steps per epoch)"
    )
    loss: float | None = Field(
        default=None, allow_inf_nan=False, description="training loss of the last step, over the whole global batch"
    )
    tokens_per_second: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="tokens of the global batch per second of the last step"
    )
    eta_seconds: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="estimated seconds until the last step"
    )
    updated_at: str = Field(
        pattern=UTC_TIME_PATTERN, max_length=64, description="when the trainer made this report (RFC 3339, UTC)"
    )


class SFTRunStatus(Status):
    pods: str | None = Field(default=None, description="pods ready out of nodes, or done")
    progress: TrainingProgress | None = Field(
        default=None, description="training progress, as the trainer last reported it (through the control plane)"
    )
    restarts: int = Field(default=0, ge=0, description="whole-gang restarts so far")
    job_name: str | None = Field(default=None, description="the Job of the current attempt")

    @field_validator("progress", mode="before")
    @classmethod
    def _drop_old_pods_text(cls, value: Any) -> Any:
        # Objects stored before progress held training figures have the pod count text here;
        # read as none, so the operator's next status patch replaces it.
        return None if isinstance(value, str) else value


class SFTRun(CustomResource):
    """Fine-tune a model on reasoning traces: an Indexed Job of torchrun pods running `thinkube train`."""

    names = Names(
        kind="SFTRun",
        plural="sftruns",
        short="sft",
        max_name_length=40,
        columns=(
            PrinterColumn("Nodes", ".spec.nodes", "integer"),
            PrinterColumn("GPUs/Node", ".spec.gpusPerNode", "integer"),
            PrinterColumn("Pods", ".status.pods"),
            PrinterColumn("Step", ".status.progress.step", "integer"),
            PrinterColumn("Loss", ".status.progress.loss", "number"),
            PrinterColumn("Restarts", ".status.restarts", "integer"),
            PrinterColumn("Model", ".spec.baseModel", priority=1),
        ),
    )
    # Until the first Job exists (status.jobName) a wrong baseModel can still be fixed; from
    # then on that Job's volumes and config are built from it.
    transition_rules = (
        {
            "rule": "!has(oldSelf.status) || !has(oldSelf.status.jobName) || self.spec.baseModel == oldSelf.spec.baseModel",
            "fieldPath": ".spec.baseModel",
            "message": "baseModel is immutable once the run has a Job (status.jobName): create a new SFTRun to "
            "fine-tune another model",
        },
    )
    spec: SFTRunSpec
    status: SFTRunStatus = Field(default_factory=SFTRunStatus)
