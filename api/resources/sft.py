"""SFTRun: supervised fine-tuning over N nodes with torchrun + FSDP (`thinkube train`).

Defaults are the s1 recipe (the s1 paper's training details): 2 nodes x 8 GPUs, 5 epochs,
lr 1e-5, global batch 16, block size 32768, 5% warm-up, cosine, AdamW (0.9, 0.95), weight
decay 1e-4, bf16, FSDP full shard.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from thinkube.api.resources.common import (GPU_RESOURCE, ArtifactURI, CustomResource, JobSpec, Model, ModelURI,
                                           Names, ObjectName, PrinterColumn, Quantity, Rule, Status, exactly_one)


class DatasetSource(Model):
    """Training data: a URI, or the output of a CurationJob in the same namespace."""

    rules = (exactly_one("spec.dataset", uri="uri", fromCurationJob="from_curation_job"),)
    uri: ArtifactURI | None = None
    from_curation_job: ObjectName | None = Field(None, description=(
        "name of a CurationJob; the run waits (condition WaitingForInput) until it has succeeded"))


class Training(Model):
    """Hyper-parameters; the field names are the trainer's own (thinkube.workloads.training.config)."""

    # Facts of the trainer, shown in the resource for the record but not settings it reads.
    RECIPE_ONLY: ClassVar[frozenset[str]] = frozenset({"lr_scheduler", "fsdp"})

    epochs: int = Field(5, ge=1, le=1000)
    learning_rate: float = Field(1e-5, gt=0, le=1)
    global_batch_size: int = Field(16, ge=1, description="sequences per optimizer step, over all processes")
    micro_batch_size: int = Field(1, ge=1, description="sequences per process per forward pass")
    block_size: int = Field(32768, ge=128, le=1_048_576, description="maximum sequence length in tokens")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="share of steps with linear warm-up")
    lr_scheduler: Literal["cosine"] = Field("cosine", description="warm-up then cosine decay to 0 (the trainer's only schedule)")
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    precision: Literal["bf16", "fp32", "auto"] = Field("bf16", description="auto: bf16 on GPU, fp32 on CPU")
    fsdp: Literal["full_shard"] = Field("full_shard", description="FSDP2 fully_shard of every decoder layer (always)")
    gradient_checkpointing: bool = True
    chat_format: Literal["s1", "think-tags"] = "s1"
    save_every: int = Field(0, ge=0, description=(
        "checkpoint every N optimizer steps, so a gang restart resumes; 0: only the final model"))
    seed: int = Field(0, ge=0)


def _processes(spec: "SFTRunSpec") -> int:
    return spec.nodes * (spec.gpus_per_node or 1) * spec.training.micro_batch_size


class SFTRunSpec(JobSpec):
    rules = JobSpec.rules + (Rule(
        "self.training.globalBatchSize % (self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)"
        " * self.training.microBatchSize) == 0",
        "training.globalBatchSize must be a multiple of nodes x gpusPerNode x training.microBatchSize "
        "(the per-step gradient-accumulation count must be whole)",
        field_path=".training.globalBatchSize",
        check=lambda s: s.training.global_batch_size % _processes(s) == 0,
    ),)
    base_model: ModelURI = Field(description="the model to fine-tune; fixed once the run has a Job")
    dataset: DatasetSource
    nodes: int = Field(2, ge=1, le=256, description="pods, one per node (Indexed Job completions and parallelism)")
    gpus_per_node: int = Field(8, ge=0, le=64, description="GPUs each pod requests; 0 runs one CPU process per pod")
    gpu_resource: str | None = Field(None, min_length=1, description=(
        f"the extended resource name of a GPU; default: the operator's (the chart's gpu.resourceName, {GPU_RESOURCE})"))
    training: Training = Field(default_factory=Training)
    max_restarts: int = Field(3, ge=0, le=100, description=(
        "whole-gang restarts: when any pod fails, every pod is restarted, at most this many times"))
    master_port: int = Field(29500, ge=1024, le=65535, description="torchrun rendezvous port")
    shm_size: Quantity | None = Field(None, description="size limit of the memory-backed /dev/shm")


class SFTRunStatus(Status):
    progress: str | None = Field(None, description="pods ready out of nodes, or done")
    restarts: int = Field(0, ge=0, description="whole-gang restarts so far")
    job_name: str | None = Field(None, description="the Job of the current attempt")


class SFTRun(CustomResource):
    """Fine-tune a model on reasoning traces: an Indexed Job of torchrun pods running `thinkube train`."""

    names = Names(
        kind="SFTRun", plural="sftruns", short="sft", max_name_length=40,
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
    transition_rules = ({
        "rule": "!has(oldSelf.status) || !has(oldSelf.status.jobName) || self.spec.baseModel == oldSelf.spec.baseModel",
        "fieldPath": ".spec.baseModel",
        "message": "baseModel is immutable once the run has a Job (status.jobName): create a new SFTRun to "
                   "fine-tune another model",
    },)
    spec: SFTRunSpec
    status: SFTRunStatus = Field(default_factory=SFTRunStatus)
