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
import os
import sys
from typing import Literal, get_args, get_origin

from thinkube.api.stages.train import TrainConfig
from thinkube.constants import ENV_CONFIG, EXIT_BAD_CONFIG, EXIT_RETRIABLE

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"YAML/JSON file of settings (over ${ENV_CONFIG}'s); flags override both")
    # One flag per TrainConfig field, all defaulting to None, so the loader can tell which
    # settings the command line really gave.
    for name, f in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        text = f"{f.description or ''} (default {f.default!r})".strip()
        choices = get_args(f.annotation) if get_origin(f.annotation) is Literal else None
        if f.annotation is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif choices:
            p.add_argument(flag, choices=choices, default=None, help=text)
        else:
            kind = next((t for t in (int, float) if t in (f.annotation, *get_args(f.annotation))), str)
            p.add_argument(flag, type=kind, default=None, help=text)


def run(args: argparse.Namespace) -> int:
    code = _train(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # With the process group destroyed and every file written, leave without the interpreter's
        # teardown: torch's C++ teardown in a torchrun worker sometimes aborts there ("terminate
        # called without an active exception", SIGABRT). The exit code is what torchrun and the Job
        # judge the run by, so a finished rank would count as failed and restart the whole gang,
        # while the other nodes' torchrun waited out its 300 s exit barrier.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _train(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from thinkube.api.stages.loader import BadConfig, load
    from thinkube.workloads.training.loop import SimulatedCrash, train

    try:
        train(load(TrainConfig, {name: getattr(args, name) for name in TrainConfig.model_fields}, args.config))
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
