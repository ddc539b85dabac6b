"""SFTRun: supervised fine-tuning over N nodes with torchrun + FSDP (`thinkube train`).

Defaults are the s1 recipe: 2 nodes x 8 GPUs, and `spec.training` is the trainer's own
`TrainRecipe` (thinkube.api.stages.train) with its defaults.
"""

from __future__ import annotations

from pydantic import Field

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


class SFTRunStatus(Status):
    progress: str | None = Field(default=None, description="pods ready out of nodes, or done")
    restarts: int = Field(default=0, ge=0, description="whole-gang restarts so far")
    job_name: str | None = Field(default=None, description="the Job of the current attempt")


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
            PrinterColumn("Progress", ".status.progress"),
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
