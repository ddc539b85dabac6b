"""`thinkube train`'s settings: the s1 SFT recipe as defaults, and what a run adds to it.

`TrainRecipe` is what an SFTRun's `spec.training` holds; `TrainConfig` adds the model, the
data and the output the operator resolves. The effective config is logged at start and
saved next to every checkpoint and the final model, so a run can be reproduced from its
outputs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thinkube.api.model import Model
from thinkube.api.stages.loader import BadConfig

ChatFormatName = Literal["s1", "think-tags"]
# The trained model's folder inside a run's output (a BudgetForcedServer serves it from there).
FINAL_MODEL_DIR = "final"


class TrainRecipe(Model):
    """Hyper-parameters. Defaults are the s1 recipe (the s1 paper's training setup): 5 epochs,
    global batch 16 of micro batch 1, lr 1e-5, 5% linear warm-up then cosine to 0, AdamW
    (0.9, 0.95), weight decay 1e-4, bf16 on GPUs, 32K block, no packing, gradient checkpointing."""

    epochs: int = Field(default=5, ge=1, le=1000)
    learning_rate: float = Field(default=1e-5, gt=0, le=1)
    global_batch_size: int = Field(default=16, ge=1, description="sequences per optimizer step, over all processes")
    micro_batch_size: int = Field(default=1, ge=1, description="sequences per process per forward pass")
    block_size: int = Field(default=32768, ge=16, le=1_048_576, description="maximum sequence length in tokens")
    overlong: Literal["truncate", "drop", "error"] = Field(
        default="truncate", description=("examples longer than blockSize: truncate, drop or fail (always reported)")
    )
    packing: bool = Field(
        default=False, description=("pack short examples into one block (s1 does not; raises tokens/s)")
    )
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1, description="share of steps with linear warm-up")
    lr_scheduler: Literal["cosine"] = Field(
        default="cosine", description=("warm-up then cosine decay to 0 (the only schedule)")
    )
    adam_beta1: float = Field(default=0.9, ge=0, lt=1)
    adam_beta2: float = Field(default=0.95, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto",
        description=("auto: bf16 on GPU (the s1 recipe), fp32 on CPU (CPU bf16 matmuls are slow and lossy)"),
    )
    fsdp: Literal["full_shard"] = Field(
        default="full_shard", description=("FSDP2 fully_shard of every decoder layer (always)")
    )
    cpu_offload: bool = Field(
        default=False,
        description=(
            "GPU: keep parameters, gradients and optimizer state in host memory (FSDP2 CPUOffloadPolicy), for models "
            "larger than the GPUs hold; slower"
        ),
    )
    gradient_checkpointing: bool = Field(
        default=True,
        description=(
            "recompute activations in the backward pass (s1 needs it for 32K blocks); off is faster for small models"
        ),
    )
    chat_format: ChatFormatName = "s1"
    save_every: int = Field(
        default=0,
        ge=0,
        description=("checkpoint every N optimizer steps, so a restart resumes; 0: only the final model"),
    )
    seed: int = Field(default=42, ge=0)


class TrainConfig(TrainRecipe):
    """A whole `thinkube train` run: the recipe, what it trains on and where it writes."""

    model: str = Field(
        default="tiny", min_length=1, description=("'tiny', a folder, pvc://claim/path or hf://org/name[@rev]")
    )
    dataset: str = Field(default="", description="s1 records: .jsonl, .parquet, a folder, pvc://claim/path")
    output: str = Field(
        default="output",
        min_length=1,
        description=("folder (path, file:// or pvc://) for checkpoints, metrics.jsonl and final/"),
    )
    max_steps: int = Field(default=0, ge=0, description="cap on optimizer steps (0: epochs decide)")
    stop_after_steps: int = Field(
        default=0, ge=0, description=("debug: exit 75 after N steps, as a crash would (tests resume)")
    )

    @model_validator(mode="after")
    def _has_dataset(self) -> TrainConfig:
        if not self.dataset:
            raise ValueError("no dataset: give --dataset (or `dataset:` in the config file)")
        return self

    def accumulation_steps(self, world_size: int) -> int:
        """Micro batches per rank per optimizer step, so the global batch is the same at any scale."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise BadConfig(
                f"global batch {self.global_batch_size} is not divisible by micro batch "
                f"{self.micro_batch_size} x world size {world_size} = {per_step}"
            )
        return self.global_batch_size // per_step

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
