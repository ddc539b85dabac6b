"""Resumable checkpoints (torch.distributed.checkpoint) and the final Hugging Face model.

Layout under the output folder:
  step-000004/           model + optimizer shards (DCP), trainer_state.json, rng-rank*.pt,
                         train_config.json, COMPLETE (written last)
  step-000006.tmp/       being written; never resumed from, removed on restart
  final/                 save_pretrained model + tokenizer + train_config.json

Every rank writes its shards into `step-N.tmp`; after a barrier rank 0 writes COMPLETE and
renames the folder, so a crash at any point leaves either a whole checkpoint or a `.tmp`.
The output folder must be shared by all nodes (a PVC), as DCP writes one file per rank.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from thinkube.api.stages.train import FINAL_MODEL_DIR, TrainConfig
from thinkube.workloads.training.distributed import World, barrier
from thinkube.workloads.training.weights import save_weights

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "train_config.json"  # the effective config, next to every checkpoint and the final model
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(output: Path, step: int) -> Path:
    return output / f"step-{step:06d}"


def latest_complete(output: Path) -> Path | None:
    done = [
        (int(m.group(1)), p)
        for p in output.glob("step-*")
        if (m := _STEP_DIR.match(p.name)) and (p / COMPLETE).is_file()
    ]
    return max(done)[1] if done else None


def remove_partial(output: Path, world: World) -> None:
    """Leftovers of a crash mid-save; rank 0 removes them before anyone writes again."""
    if world.is_main:
        for p in output.glob("step-*.tmp"):
            log.warning("removing incomplete checkpoint %s (a previous run stopped while writing it)", p)
            shutil.rmtree(p, ignore_errors=True)
    barrier(world)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def save(
    output: Path, step: int, model, optimizer, scheduler, cfg: TrainConfig, world: World, data_position: dict[str, int]
) -> Path:
    final, tmp = step_dir(output, step), Path(str(step_dir(output, step)) + ".tmp")
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
    torch.save(_rng_state(), tmp / f"rng-rank{world.rank}.pt")
    barrier(world)  # every rank's shards are on disk before the checkpoint is declared whole
    if world.is_main:
        state = {"step": step, "scheduler": scheduler.state_dict(), "world_size": world.size, **data_position}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        (tmp / CONFIG_FILE).write_text(cfg.to_json())
        (tmp / COMPLETE).write_text(str(step))
        tmp.rename(final)
        log.info("checkpoint saved: %s", final)
    barrier(world)
    return final


def load(path: Path, model, optimizer, scheduler, world: World) -> dict[str, Any]:
    """Restore in place; returns the trainer state (step, epoch)."""
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_sd, "optim": optim_sd}  # DCP's state dict: loaded in place
    dcp.load(state, checkpoint_id=str(path))  # reshards if the world size changed
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    trainer = json.loads((path / STATE_FILE).read_text())
    scheduler.load_state_dict(trainer["scheduler"])
    rng = path / f"rng-rank{world.rank}.pt"
    if rng.is_file():  # absent when resuming with more ranks than saved: fresh RNG is fine
        saved = torch.load(rng, weights_only=False)
        random.setstate(saved["python"])
        torch.set_rng_state(saved["torch"])
        if "cuda" in saved and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved["cuda"])
    log.info("resumed from %s (step %d)", path, trainer["step"])
    return trainer


def save_final(
    output: Path, model, model_path: str, tokenizer, cfg: TrainConfig, world: World, dtype: torch.dtype
) -> Path:
    """A from_pretrained-loadable folder in the training compute dtype (bf16 on GPU, as s1 ships;
    fp32 master weights would double the size), gathered one tensor at a time."""
    dest = output / FINAL_MODEL_DIR
    tmp = output / (FINAL_MODEL_DIR + ".tmp")
    if world.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(world)
    save_weights(model, tmp, dtype, world)
    if world.is_main:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_path)
        config.dtype = dtype
        config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CONFIG_FILE).write_text(cfg.to_json())
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        log.info("final model saved: %s", dest)
    barrier(world)
    return dest
