"""Model weights in and out of a sharded model, with host and device memory per rank that
shrink with the world size.

In: the model is built on the meta device (no memory), sharded, materialised shard by shard,
and each rank reads only its own rows of each tensor from the safetensors files. No rank
ever holds the whole model, so a 32B model starts on 8-GPU nodes whose processes could
each not hold it in fp32.

Out: the final from_pretrained folder is gathered one tensor at a time and written in
safetensors shards of at most SHARD_BYTES, so rank 0 never holds the whole model either.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from thinkube.api.stages.loader import BadConfig
from thinkube.workloads.training.distributed import World, shard_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

SHARD_BYTES = 2 << 30  # the final model's safetensors files, as save_pretrained's default 5 GB would on 80 GB hosts
INDEX_FILE = "model.safetensors.index.json"


def build_sharded(
    path: str,
    revision: str | None,
    world: World,
    *,
    param_dtype: torch.dtype | None,
    gradient_checkpointing: bool,
    cpu_offload: bool,
) -> PreTrainedModel:
    """The model from `path`, sharded over the world (one process: not sharded), fp32 master weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    started, before = time.perf_counter(), rss_mib()
    config = AutoConfig.from_pretrained(path, revision=revision)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if world.distributed:
        shard_model(model, world, param_dtype, cpu_offload=cpu_offload)
    # With offload the shards live in host memory; FSDP moves each unit to the GPU to compute.
    offloaded = cpu_offload and world.distributed and world.device.type == "cuda"
    model.to_empty(device="cpu" if offloaded else world.device)
    model.tie_weights()  # to_empty gives an unsharded model's tied tensors separate storage
    _init_computed_buffers(model, world.device)
    read = load_weights(model, Path(path))
    # Every rank logs this: per-rank memory is what a larger world must shrink.
    log.info(
        "rank %d: model loaded in %.1f s, %.2f GiB of weights read (world size %d); host memory for the "
        "model +%.0f MiB (peak %.0f MiB)",
        world.rank,
        time.perf_counter() - started,
        read / 2**30,
        world.size,
        peak_rss_mib() - before,
        peak_rss_mib(),
    )
    return model


def _init_computed_buffers(model: PreTrainedModel, device: torch.device) -> None:
    """Buffers that are computed, not stored (rotary frequencies): to_empty left them undefined."""
    for module in model.modules():
        transient = {
            name: buf
            for name, buf in module._buffers.items()
            if name in module._non_persistent_buffers_set and buf is not None
        }
        if not transient:
            continue
        for name, buf in transient.items():
            module._buffers[name] = torch.empty_like(buf, device=device)
        model._init_weights(module)


# safetensors dtype names -> torch dtypes (the ones model weights come in)
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class Stored:
    """Where one tensor's bytes are in a safetensors file."""

    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # byte offset of its data in the file


def _header(file: Path) -> dict[str, Stored]:
    """A safetensors file's table of contents: an 8-byte length, a JSON header, then the data."""
    with file.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    base = 8 + length
    return {
        name: Stored(file, DTYPES[info["dtype"]], tuple(info["shape"]), base + info["data_offsets"][0])
        for name, info in header.items()
        if name != "__metadata__"
    }


def _weight_files(folder: Path) -> dict[str, Stored]:
    """Tensor name -> where it is stored."""
    index = folder / INDEX_FILE
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise BadConfig(
            f"model {folder}: no model.safetensors or {INDEX_FILE}; the trainer reads safetensors "
            "weights (convert .bin checkpoints with save_pretrained first)"
        )
    return {name: stored for file in files for name, stored in _header(folder / file).items()}


def _read_rows(stored: Stored, rows: slice, into: torch.Tensor) -> int:
    """Copies rows `rows` of a stored tensor into `into`, reading exactly their bytes (row-major,
    so they are contiguous) rather than mapping the file, so a rank's memory holds its rows
    alone; straight into `into`'s memory when the dtypes match. Returns the bytes read."""
    row_items = math.prod(stored.shape[1:])
    itemsize = torch.empty((), dtype=stored.dtype).element_size()
    count = (rows.stop - rows.start) * row_items
    with stored.file.open("rb") as f:
        f.seek(stored.start + rows.start * row_items * itemsize)
        if into.dtype == stored.dtype and into.device.type == "cpu" and into.is_contiguous() and into.dim():
            f.readinto(into.view(torch.uint8).numpy().data)
        else:
            data = bytearray(f.read(count * itemsize))
            into.copy_(torch.frombuffer(data, dtype=stored.dtype, count=count).view(into.shape))
    return count * itemsize


def _local_slice(tensor: torch.Tensor) -> tuple[torch.Tensor, slice]:
    """The tensor this rank holds and which rows of the full tensor it is (FSDP2 shards dim 0)."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    if not isinstance(tensor, DTensor):
        return tensor, slice(0, tensor.shape[0] if tensor.dim() else 1)
    shape, offset = compute_local_shape_and_global_offset(tensor.shape, tensor.device_mesh, tensor.placements)
    if tuple(shape[1:]) != tuple(tensor.shape[1:]):
        raise NotImplementedError(f"sharding on a dimension other than 0: {tensor.placements}")
    return tensor.to_local(), slice(offset[0], offset[0] + shape[0])


@torch.no_grad()
def load_weights(model: torch.nn.Module, folder: Path) -> int:
    """Copies each parameter's (and stored buffer's) own rows from the files; returns bytes read."""
    stored = _weight_files(folder)
    read = 0
    for name, tensor in _stored_tensors(model):
        if name not in stored:
            raise BadConfig(
                f"model {folder}: no tensor {name!r} in its weights; the trainer reads checkpoints "
                "whose tensor names match the model's parameters"
            )
        if tuple(tensor.shape) != stored[name].shape:
            raise BadConfig(
                f"model {folder}: {name} is {stored[name].shape} in the weights but "
                f"{tuple(tensor.shape)} in the model's config"
            )
        local, rows = _local_slice(tensor)
        if local.numel():
            read += _read_rows(stored[name], rows, local)
    return read


def _stored_tensors(model: torch.nn.Module):
    """(name, tensor) of everything the checkpoint stores, each shared (tied) tensor once."""
    seen: set[int] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            yield name, tensor


@torch.no_grad()
def save_weights(model: torch.nn.Module, folder: Path, dtype: torch.dtype, world: World) -> None:
    """Writes the full model into `folder` (rank 0) one tensor at a time: each tensor is gathered
    (a collective every rank joins), cast, and buffered until a file of SHARD_BYTES is full."""
    from torch.distributed.tensor import DTensor

    shard: dict[str, torch.Tensor] = {}
    shard_bytes, total = 0, 0
    files: list[str] = []
    weight_map: dict[str, str] = {}

    def flush() -> None:
        nonlocal shard, shard_bytes
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        files.append(name)
        weight_map.update({k: name for k in shard})
        shard, shard_bytes = {}, 0

    for name, tensor in _stored_tensors(model):
        full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        if world.is_main:
            value = full.detach().to(device="cpu", dtype=dtype if full.is_floating_point() else full.dtype)
            shard[name] = value.contiguous()
            shard_bytes += value.numel() * value.element_size()
            total += value.numel() * value.element_size()
            if shard_bytes >= SHARD_BYTES:
                flush()
        del full
    if not world.is_main:
        return
    if shard:
        flush()
    # The names save_pretrained gives: model-00001-of-00003.safetensors, and an index.
    final = {f: f.replace(".safetensors", f"-of-{len(files):05d}.safetensors") for f in files}
    for old, new in final.items():
        (folder / old).rename(folder / new)
    (folder / INDEX_FILE).write_text(
        json.dumps(
            {"metadata": {"total_size": total}, "weight_map": {k: final[v] for k, v in sorted(weight_map.items())}},
            indent=2,
        )
    )


def rss_mib() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
