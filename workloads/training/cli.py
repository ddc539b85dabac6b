"""`thinkube train`: SFT on s1 records. Run it under torchrun for more than one process:

  torchrun --nnodes=$NNODES --nproc-per-node=$NPROC_PER_NODE --node-rank=$NODE_RANK \\
           --master-addr=$MASTER_ADDR --master-port=$MASTER_PORT -m thinkube.cli train --config cfg.yaml

Exit codes: 0 done, EXIT_BAD_CONFIG (2) bad input (never retry), EXIT_RETRIABLE (75) a
distributed error, out of memory or a simulated crash (retry: it resumes from the last
complete checkpoint). torch is imported only in run(), so `thinkube --help` stays fast.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from thinkube.constants import EXIT_BAD_CONFIG, EXIT_RETRIABLE
from thinkube.workloads.formats.chat import CHAT_FORMATS
from thinkube.workloads.training.config import OVERLONG, PRECISIONS, TrainConfig

log = logging.getLogger(__name__)

_HELP = {
    "model": "'tiny', a folder, pvc://claim/path or hf://org/name[@rev]",
    "dataset": "s1 records: .jsonl, .parquet, a folder, pvc://claim/path",
    "output": "folder (path, file:// or pvc://) for checkpoints, metrics.jsonl and final/",
    "overlong": "examples longer than the block size: truncate, drop or error (always reported)",
    "max_steps": "cap on optimizer steps (0: epochs decide)",
    "save_every": "checkpoint every N steps (0: final model only)",
    "stop_after_steps": "debug: exit 75 after N steps, as a crash would (tests resume)",
    "metrics_url": "POST each step's metrics as JSON here (best effort, 2 s timeout)",
}
_CHOICES = {"overlong": OVERLONG, "chat_format": tuple(CHAT_FORMATS), "precision": PRECISIONS}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON file of settings (default: $THINKUBE_CONFIG); flags override it")
    # One flag per TrainConfig field, all defaulting to None, so load_config can tell which
    # settings the command line really gave (flags > file > defaults).
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{_HELP.get(f.name, '')} (default {default})".strip())
            continue
        kind = {"int": int, "float": float}.get(f.type, str)
        p.add_argument(flag, type=kind, default=None, choices=_CHOICES.get(f.name),
                       help=f"{_HELP.get(f.name, '')} (default {default!r})".strip())


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from thinkube.workloads.training.config import BadConfig, load_config
    from thinkube.workloads.training.loop import SimulatedCrash, train

    flags = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    try:
        train(load_config(flags, args.config))
    except BadConfig as e:
        print(f"thinkube train: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except SimulatedCrash as e:
        log.error("%s", e)
        return EXIT_RETRIABLE
    except (torch.OutOfMemoryError, dist.DistError) as e:
        log.error("retriable failure (%s): %s", type(e).__name__, e)
        return EXIT_RETRIABLE
    except RuntimeError as e:
        # gloo/NCCL failures (a peer died, a timeout) often surface as a plain RuntimeError.
        if any(w in str(e).lower() for w in ("nccl", "gloo", "connection", "timed out", "out of memory")):
            log.error("retriable failure: %s", e)
            return EXIT_RETRIABLE
        raise
    return 0
