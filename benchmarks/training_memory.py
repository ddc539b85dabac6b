"""Training memory at scale: `python benchmarks/training_memory.py` (CPU, ~10 min, ~8 GiB free memory).

A random-initialised Qwen2 of about 0.5B parameters (benchmarks/configs/qwen2-0.5b.json, no
download) saved in fp32, loaded for training under torchrun with 1, 2 and 4 processes (gloo):

- before: what the trainer did until now and what most SFT scripts do, from_pretrained on
  every rank, then shard (each rank holds the whole model first);
- after: the trainer's loading (thinkube.workloads.training.weights): the model built on the
  meta device, sharded, then each rank reading only its rows of each tensor.

Per rank, the worst rank: host memory the model took (peak RSS over the RSS before loading),
peak RSS after one optimizer step (parameters, gradients, AdamW state), load time, and the
sharded checkpoint's save and load times (torch.distributed.checkpoint, the same in both).
The memory must fall as 1/world after and stay flat before; the ratio after/before is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIG = Path(__file__).resolve().parent / "configs" / "qwen2-0.5b.json"
MODES = ("before", "after")


def make_model(config_file: Path, folder: Path) -> int:
    """A random model of that shape with the tiny tokenizer, saved in fp32; returns its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from thinkube.workloads.models import resolve_model

    config = Qwen2Config(**json.loads(config_file.read_text()))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("tiny")[0]).save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def worker(mode: str, model_dir: str, out: str) -> None:
    """One rank: load, one optimizer step, save and load a checkpoint; rank 0 writes every rank's figures."""
    import torch
    import torch.distributed as dist

    from thinkube.api.stages.train import TrainConfig
    from thinkube.workloads.training import checkpoint, weights
    from thinkube.workloads.training.distributed import barrier, init_world, shard_model
    from thinkube.workloads.training.loop import build_optimizer

    world = init_world()
    cfg = TrainConfig(dataset="-", output=out, gradient_checkpointing=False)
    before, started = weights.rss_mib(), time.perf_counter()
    if mode == "before":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model.to(world.device)
        if world.distributed:
            shard_model(model, world, None)
    else:
        model = weights.build_sharded(
            model_dir, None, world, param_dtype=None, gradient_checkpointing=False, cpu_offload=False
        )
    figures = {"load_s": time.perf_counter() - started, "model_mib": weights.peak_rss_mib() - before}
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    ids = torch.randint(0, model.config.vocab_size, (1, 32))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    figures["step_peak_mib"] = weights.peak_rss_mib()
    barrier(world)
    started = time.perf_counter()
    path = checkpoint.save(Path(out), 1, model, optimizer, scheduler, cfg, world, {})
    figures["save_s"] = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint.load(path, model, optimizer, scheduler, world)
    barrier(world)
    figures["ckpt_load_s"] = time.perf_counter() - started
    gathered = [None] * world.size
    if world.distributed:
        dist.all_gather_object(gathered, figures)
    else:
        gathered = [figures]
    if world.is_main:
        (Path(out) / "figures.json").write_text(json.dumps(gathered))
    if world.distributed:
        dist.destroy_process_group()


def run(mode: str, world: int, model_dir: Path, port: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="thinkube-bench-ckpt-") as out:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={world}",
            f"--master-port={port}",
            __file__,
            "--worker",
            mode,
            "--model",
            str(model_dir),
            "--out",
            out,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise SystemExit(f"{mode} x{world} failed:\n{p.stderr[-3000:]}")
        ranks = json.loads((Path(out) / "figures.json").read_text())
    return {key: max(r[key] for r in ranks) for key in ranks[0]}  # the worst rank decides


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--worlds", default="1,2,4")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.model, args.out)

    from thinkube.workloads.serving.process import free_port

    worlds = [int(w) for w in args.worlds.split(",")]
    with tempfile.TemporaryDirectory(prefix="thinkube-bench-model-") as tmp:
        params = make_model(args.config, Path(tmp))
        print(f"model: {args.config.name}, {params / 1e9:.2f}B parameters, {params * 4 / 2**30:.2f} GiB in fp32")
        results = {(m, w): run(m, w, Path(tmp), free_port()) for w in worlds for m in MODES}
    print(
        f"\n{'world':>5} {'mode':>6} {'model MiB/rank':>15} {'peak MiB/rank':>14} {'load s':>7} "
        f"{'ckpt save s':>11} {'ckpt load s':>11}"
    )
    for (mode, world), r in results.items():
        print(
            f"{world:>5} {mode:>6} {r['model_mib']:>15.0f} {r['step_peak_mib']:>14.0f} {r['load_s']:>7.1f} "
            f"{r['save_s']:>11.1f} {r['ckpt_load_s']:>11.1f}"
        )
    print("\nafter / before, per rank (lower is better):")
    for world in worlds:
        a, b = results[("after", world)], results[("before", world)]
        print(
            f"  world {world}: model memory {a['model_mib'] / b['model_mib']:.2f}x, "
            f"peak memory {a['step_peak_mib'] / b['step_peak_mib']:.2f}x, load time {a['load_s'] / b['load_s']:.2f}x"
        )
    one = results[("after", worlds[0])]["model_mib"]
    print(
        "model memory per rank against world "
        + str(worlds[0])
        + ": "
        + ", ".join(f"x{w}: {results[('after', w)]['model_mib'] / one:.2f}" for w in worlds)
    )


if __name__ == "__main__":
    main()
