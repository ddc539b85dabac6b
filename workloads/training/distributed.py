"""Process group, device, and FSDP2 sharding for the training loop.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; the operator starts it with NNODES, NODE_RANK (or
an Indexed Job's JOB_COMPLETION_INDEX), NPROC_PER_NODE, MASTER_ADDR and MASTER_PORT.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from thinkube.constants import ENV_JOB_COMPLETION_INDEX, ENV_NNODES, ENV_NODE_RANK, ENV_NPROC_PER_NODE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def node_rank(environ=os.environ) -> int:
    """NODE_RANK, else an Indexed Job's JOB_COMPLETION_INDEX (one pod per node), else 0."""
    return int(environ.get(ENV_NODE_RANK) or environ.get(ENV_JOB_COMPLETION_INDEX) or 0)


def init_world() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None
        )
    world = World(rank, size, local_rank, device)
    if world.is_main:
        log.info(
            "world: %d process(es) on %s; nnodes=%s node_rank=%d nproc_per_node=%s",
            size,
            device.type,
            os.environ.get(ENV_NNODES, "1"),
            node_rank(),
            # torchrun exports LOCAL_WORLD_SIZE; NPROC_PER_NODE is what the operator set
            os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get(ENV_NPROC_PER_NODE, "1"),
        )
    return world


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_sum(value: float, world: World) -> float:
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return float(t.item())


def shard_model(
    model: torch.nn.Module, world: World, param_dtype: torch.dtype | None, *, cpu_offload: bool = False
) -> torch.nn.Module:
    """FSDP2 full shard: each decoder layer is its own unit (its all-gather overlaps the
    previous layer's compute), then the root (embeddings, norm, head). MixedPrecisionPolicy
    only on GPU: bf16 compute with fp32 gradient reduction, as s1 trains. `cpu_offload`
    (GPU only) keeps parameters, gradients and optimizer state in host memory."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    kwargs: dict = {}
    if param_dtype is not None and world.device.type == "cuda":
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    if cpu_offload and world.device.type == "cuda":
        kwargs["offload_policy"] = CPUOffloadPolicy()
    layers = model.get_submodule("model.layers")
    assert isinstance(layers, torch.nn.ModuleList)  # where transformers' decoder-only models keep them
    for layer in layers:
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    return model
