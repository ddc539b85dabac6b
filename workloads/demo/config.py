"""What a demo run is: sizes, training settings and the sweep, with defaults that finish in
minutes on a 2-core CPU. Each stage's fingerprint is taken over the settings it reads, so a
rerun with the same folder reuses every stage whose inputs did not change."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from thinkube.api.stages.serve import EngineName
from thinkube.api.stages.train import TrainRecipe
from thinkube.workloads.demo.data import DataSpec

STAGES = ("data", "curate", "train", "eval")
BLOCK_SIZE = 256  # training block: the longest demo example is ~140 tokens
DATA_FORMAT = 4  # bump when the generated pool or the teacher's traces change, so an older demo folder is redone


@dataclass(frozen=True)
class DemoConfig:
    out: str = "thinkube-demo"
    data: DataSpec = field(default_factory=DataSpec)
    select: int = 1000  # curation target size (s1K: 1,000)
    base_max_tokens: int = 48  # completion cap of each difficulty call to the untrained model
    # SFT: s1's recipe shape (global batch 16, AdamW, warm-up + cosine) at a from-scratch
    # learning rate and more epochs: the tiny model is random, not a pretrained 32B. At 20
    # epochs it still got subtraction steps wrong; 30 learn every step and the checks.
    epochs: int = 30
    learning_rate: float = 6e-3
    global_batch_size: int = 16
    nproc: int = 2  # torchrun processes (gloo on CPU); each takes global_batch_size / nproc per step
    engine: EngineName = "auto"  # thinkube serve --engine
    budgets: tuple[int, ...] = (4, 8, 16, 24, 32, 48)  # max_thinking_tokens swept (a trace line is 4 tokens)
    num_ignore: tuple[int, ...] = (1, 2)  # "Wait" extensions swept
    max_tokens: int = 160  # completion cap per evaluation request
    stages: tuple[str, ...] = STAGES

    def validate(self) -> None:
        self.data.validate()
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"stages {list(self.stages)}: use a subset of {', '.join(STAGES)}")
        if self.nproc < 1 or self.global_batch_size % self.nproc:
            raise ValueError(f"nproc {self.nproc}: must divide the global batch size {self.global_batch_size}")
        if self.select < 1 or self.select > self.data.pool_size:
            raise ValueError(f"select {self.select}: must be between 1 and the pool size {self.data.pool_size}")
        if not self.budgets or min(self.budgets) < 1 or any(k < 0 for k in self.num_ignore):
            raise ValueError(
                f"budgets {list(self.budgets)} must be positive and num_ignore {list(self.num_ignore)} non-negative"
            )
        if self.epochs < 1:
            raise ValueError(f"epochs {self.epochs}: must be at least 1")

    @property
    def micro_batch_size(self) -> int:
        return self.global_batch_size // self.nproc

    def train_recipe(self) -> TrainRecipe:
        """What the demo trains with, locally and on a cluster: the s1 recipe where these
        settings leave it. Gradient checkpointing is off: a tiny model's activations are small,
        and recomputing them only slows the demo."""
        return TrainRecipe(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            global_batch_size=self.global_batch_size,
            micro_batch_size=self.micro_batch_size,
            block_size=BLOCK_SIZE,
            seed=self.data.seed,
            gradient_checkpointing=False,
        )

    def stage_settings(self, stage: str) -> dict:
        d = asdict(self)
        return {
            "data": {**d["data"], "format": DATA_FORMAT},
            "curate": {"select": self.select, "base_max_tokens": self.base_max_tokens, "seed": self.data.seed},
            "train": {k: d[k] for k in ("epochs", "learning_rate", "global_batch_size", "nproc")},
            "eval": {k: d[k] for k in ("budgets", "num_ignore", "max_tokens", "engine")},
        }[stage]

    def fingerprint(self, stage: str) -> str:
        """Over this stage's settings and every earlier stage's: a changed input redoes what follows."""
        upto = STAGES[: STAGES.index(stage) + 1]
        blob = json.dumps([self.stage_settings(s) for s in upto], sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
