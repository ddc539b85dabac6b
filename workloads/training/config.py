"""TrainConfig: the s1 SFT recipe as defaults, overridden by a YAML/JSON file, then by flags.

Precedence is flags > file > defaults. The file comes from `--config` or, when that is not
given, from $THINKUBE_CONFIG (how the operator hands a stage its spec). The effective config
is logged at start and saved as JSON next to every checkpoint and the final model, so a run
can always be reproduced from its outputs.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from thinkube.constants import ENV_CONFIG
from thinkube.workloads.formats.chat import CHAT_FORMATS

CONFIG_FILE = "train_config.json"
OVERLONG = ("truncate", "drop", "error")
PRECISIONS = ("auto", "bf16", "fp32")


class BadConfig(ValueError):
    """Wrong input or configuration: the process exits with EXIT_BAD_CONFIG, never retried."""


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"  # 'tiny', a folder, pvc://claim/path or hf://org/name[@rev]
    dataset: str = ""  # s1 records: .jsonl/.parquet/folder/pvc:// (see formats.load_records)
    output: str = "output"  # folder URI for checkpoints, metrics.jsonl and the final model
    chat_format: str = "s1"
    # s1 recipe (the s1 paper's training setup): 5 epochs, global batch 16 of micro batch 1, lr 1e-5,
    # 5% linear warm-up then cosine to 0, AdamW(0.9, 0.95), wd 1e-4, bf16, 32K block, no packing.
    epochs: int = 5
    global_batch_size: int = 16
    micro_batch_size: int = 1
    learning_rate: float = 1e-5
    warmup_ratio: float = 0.05
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    block_size: int = 32768
    overlong: str = "truncate"  # examples longer than block_size: truncate|drop|error (always reported)
    packing: bool = False  # s1 does not pack; packing short examples raises useful tokens/s
    gradient_checkpointing: bool = False  # s1 turns it on multi-node at 32K
    precision: str = "auto"  # auto: bf16 on GPU, fp32 on CPU (CPU bf16 matmuls are slow and lossy)
    seed: int = 42
    max_steps: int = 0  # 0: epochs decide; >0 caps the number of optimizer steps
    save_every: int = 0  # checkpoint every N optimizer steps; 0: only the final model
    log_every: int = 1
    metrics_url: str | None = None  # best-effort POST of each metrics row (timeout 2 s)
    stop_after_steps: int = 0  # debug: exit non-zero after N steps, as if the process crashed

    def validate(self) -> None:
        """Checks that need no model or data; the rest happen in preflight."""
        if not self.dataset:
            raise BadConfig("no dataset: give --dataset (or `dataset:` in the config file)")
        if self.overlong not in OVERLONG:
            raise BadConfig(f"overlong={self.overlong!r}: use one of {', '.join(OVERLONG)}")
        if self.chat_format not in CHAT_FORMATS:
            raise BadConfig(f"chat_format={self.chat_format!r}: use one of {', '.join(CHAT_FORMATS)}")
        if self.precision not in PRECISIONS:
            raise BadConfig(f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")
        for name in ("epochs", "global_batch_size", "micro_batch_size", "block_size", "log_every"):
            if getattr(self, name) < 1:
                raise BadConfig(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise BadConfig(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def accumulation_steps(self, world_size: int) -> int:
        """Micro batches per rank per optimizer step, so the global batch is the same at any scale."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise BadConfig(f"global batch {self.global_batch_size} is not divisible by micro batch "
                            f"{self.micro_batch_size} x world size {world_size} = {per_step}")
        return self.global_batch_size // per_step

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


FIELDS = {f.name: f for f in fields(TrainConfig)}


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise BadConfig(f"config file {p}: not found")
    try:
        data = yaml.safe_load(p.read_text())  # YAML is a superset of JSON: one parser for both
    except yaml.YAMLError as e:
        raise BadConfig(f"config file {p}: not valid YAML/JSON: {e}") from e
    data = data or {}
    if not isinstance(data, dict):
        raise BadConfig(f"config file {p}: expected a mapping of settings, got {type(data).__name__}")
    # Accept kebab-case keys too, so a file can reuse the flag spellings.
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadConfig(f"config file {p}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    return data


def load_config(flags: dict[str, Any], config_path: str | None = None,
                environ: os._Environ | dict[str, str] = os.environ) -> TrainConfig:
    """flags: only the settings given on the command line (None values mean 'not given')."""
    path = config_path or environ.get(ENV_CONFIG)
    merged: dict[str, Any] = read_config_file(path) if path else {}
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        cfg = TrainConfig(**{k: _coerce(k, v) for k, v in merged.items()})
    except (TypeError, ValueError) as e:
        raise BadConfig(f"bad setting: {e}") from e
    cfg.validate()
    return cfg


def _coerce(name: str, value: Any) -> Any:
    """Files may hold '1e-5' or 'true' as strings (YAML 1.1 reads 1e-5 as a string)."""
    kind = FIELDS[name].type
    if value is None or not isinstance(value, str) or kind in ("str", "str | None"):
        return value
    if kind == "bool":
        if value.lower() in ("true", "yes", "1", "on"):
            return True
        if value.lower() in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"{name}: expected a boolean, got {value!r}")
    return {"int": int, "float": float}[kind](value)
