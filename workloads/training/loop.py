"""The explicit SFT loop (torchtitan style): FSDP2, gradient accumulation, AdamW, warm-up +
cosine, clipping, checkpoints and automatic resume.

The loss of a step is sum(token cross-entropy over the whole global batch) / (label tokens
in the global batch), whatever the world size: every rank divides by the same global count
(computed from the deterministic sharding, no communication), and the backward is scaled
by the world size because FSDP averages gradients over ranks. So 1 process and N processes
take the same optimizer steps.
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from thinkube.api.stages.loader import BadConfig
from thinkube.api.stages.train import TrainConfig
from thinkube.workloads.formats import CHAT_FORMATS, load_records
from thinkube.workloads.models import resolve_model
from thinkube.workloads.training import checkpoint, weights
from thinkube.workloads.training.data import GlobalBatches, as_row, build_examples, collate, pack
from thinkube.workloads.training.distributed import World, all_sum, init_world, shutdown
from thinkube.workloads.training.progress import Progress
from thinkube.workloads.training.progress_report import Reporter
from thinkube.workloads.uris import local_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


class SimulatedCrash(RuntimeError):
    """stop_after_steps was reached: the process exits as a crashed (retriable) one would."""


@dataclass(frozen=True)
class Prepared:
    model_path: str
    revision: str | None
    tokenizer: PreTrainedTokenizerBase
    batches: GlobalBatches
    accumulation: int


def preflight(cfg: TrainConfig, world_size: int) -> Prepared:
    """Every check that can fail on bad input, before any process group or model load, so
    bad input fails fast with one message instead of as a hang or a stack trace."""
    from transformers import AutoConfig, AutoTokenizer

    accumulation = cfg.accumulation_steps(world_size)
    try:
        path, revision = resolve_model(cfg.model)
        model_config = AutoConfig.from_pretrained(path, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    except (OSError, ValueError) as e:
        raise BadConfig(f"model {cfg.model!r} cannot be loaded: {e}") from e
    max_pos = getattr(model_config, "max_position_embeddings", None)
    if max_pos and cfg.block_size > max_pos:
        raise BadConfig(f"block size {cfg.block_size} exceeds the model's max_position_embeddings {max_pos}")
    try:
        records = load_records(cfg.dataset)
    except (FileNotFoundError, ValueError) as e:  # missing, unreadable, or rows that fail validation
        raise BadConfig(f"dataset {cfg.dataset!r}: {e}") from e
    if not records:
        raise BadConfig(f"dataset {cfg.dataset!r} is empty")
    fmt = CHAT_FORMATS[cfg.chat_format]
    examples, report = build_examples(records, tokenizer, fmt, cfg.block_size, cfg.overlong)
    rows = pack(examples, cfg.block_size) if cfg.packing else [as_row(e) for e in examples]
    log.info(
        "data: %d records -> %d examples -> %d rows (packing %s; %d overlong: %d truncated, %d dropped)",
        len(records),
        report.examples,
        len(rows),
        "on" if cfg.packing else "off",
        report.overlong,
        report.truncated,
        report.dropped,
    )
    return Prepared(
        path,
        revision,
        tokenizer,
        GlobalBatches(rows, cfg.global_batch_size, cfg.micro_batch_size, cfg.seed),
        accumulation,
    )


def compute_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def warmup_cosine(total_steps: int, warmup_ratio: float):
    """Linear warm-up then cosine to 0, as HF's get_cosine_schedule_with_warmup (what s1 used)."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    # As HF Trainer (which s1 used): no weight decay on biases and norm weights (1-D tensors).
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2))


def total_steps(cfg: TrainConfig, batches: GlobalBatches) -> int:
    steps = batches.steps_per_epoch * cfg.epochs
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the last step's metrics."""
    prep = preflight(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    world = init_world()
    try:
        return _train(cfg, prep, world)
    finally:
        shutdown()


def _train(cfg: TrainConfig, prep: Prepared, world: World) -> dict:
    output = local_path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    if world.is_main:
        log.info("effective config:\n%s", cfg.to_json())
    torch.manual_seed(cfg.seed)
    dtype = compute_dtype(cfg, world.device)
    # fp32 master weights; bf16 compute comes from the FSDP policy (GPU) or autocast.
    model = weights.build_sharded(
        prep.model_path,
        prep.revision,
        world,
        param_dtype=dtype if dtype != torch.float32 else None,
        gradient_checkpointing=cfg.gradient_checkpointing,
        cpu_offload=cfg.cpu_offload,
    )
    mp_on_fsdp = world.distributed and world.device.type == "cuda"
    autocast = (
        torch.autocast(world.device.type, dtype=dtype) if dtype != torch.float32 and not mp_on_fsdp else nullcontext()
    )
    model.train()

    batches = prep.batches
    steps = total_steps(cfg, batches)
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, cfg.warmup_ratio))
    checkpoint.remove_partial(output, world)
    start = 0
    if (latest := checkpoint.latest_complete(output)) is not None:
        start = checkpoint.load(latest, model, optimizer, scheduler, world)["step"]
    # Packed rows need the block-diagonal mask except under flash attention, where
    # transformers derives the sequence boundaries from the restarting position_ids.
    block_diagonal = cfg.packing and not str(model.config._attn_implementation).startswith("flash")
    pad_id = prep.tokenizer.pad_token_id if prep.tokenizer.pad_token_id is not None else prep.tokenizer.eos_token_id
    progress = (
        Progress(
            output,
            steps,
            start,
            steps_per_epoch=batches.steps_per_epoch,
            reporter=Reporter.from_env(),
        )
        if world.is_main
        else None
    )
    row: dict = {}
    for step in range(start, steps):
        t0 = time.perf_counter()
        n_labels = batches.label_tokens(step)
        local_loss = 0.0
        for rows in batches.micro_batches(step, world.rank, world.size):
            batch = {k: v.to(world.device) for k, v in collate(rows, pad_id, block_diagonal).items()}
            with autocast:
                loss = model(**batch, num_items_in_batch=n_labels).loss
            # Gradients are reduce-scattered after every micro batch (FSDP2 default): sharded
            # accumulation keeps memory flat at long block sizes, which matters more than comms.
            (loss * world.size).backward()
            local_loss += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step_loss = all_sum(local_loss, world)
        done = step + 1
        row = {
            "step": done,
            "epoch": step // batches.steps_per_epoch,
            "loss": step_loss,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "tokens": batches.tokens(step),
            "label_tokens": n_labels,
            "step_seconds": time.perf_counter() - t0,
        }
        if progress:
            progress.step(row)
        if cfg.save_every and done % cfg.save_every == 0 and done < steps:
            checkpoint.save(
                output,
                done,
                model,
                optimizer,
                scheduler,
                cfg,
                world,
                {"epoch": done // batches.steps_per_epoch, "step_in_epoch": done % batches.steps_per_epoch},
            )
        if cfg.stop_after_steps and done == cfg.stop_after_steps and done < steps:
            raise SimulatedCrash(f"stop_after_steps={cfg.stop_after_steps}: stopping as if crashed")
    if progress:
        progress.close()
    checkpoint.save_final(output, model, prep.model_path, prep.tokenizer, cfg, world, dtype)
    return row
