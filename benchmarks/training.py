"""Training benchmark: `python benchmarks/training.py` (CPU, the tiny model, ~3 min).

1. Tokens/s of `thinkube train`'s loop vs a plain HF Trainer on the same model, data and
   batches. HF Trainer needs `accelerate` (and TRL's SFTTrainer needs `trl`); when they are
   not installed the baseline is HF's own compute path without the Trainer wrapper (the
   model's built-in loss, per-example forward/backward, AdamW, clipping), and the output
   says so.
2. Useful (non-padding) tokens/s with packing vs without, micro batch 4 so that unpacked
   micro batches carry padding.
Single process: the comparison is of the loop, not of FSDP (see tests/unit/test_train_loop.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from thinkube.workloads.formats import S1_FORMAT, S1Record  # noqa: E402
from thinkube.workloads.training.config import TrainConfig  # noqa: E402
from thinkube.workloads.training.data import build_examples  # noqa: E402
from thinkube.workloads.training.loop import train  # noqa: E402
from thinkube.workloads.training.progress import METRICS_FILE  # noqa: E402

BLOCK = 512


def make_records(n: int, seed: int = 0) -> list[dict]:
    """Lengths vary 10x, as reasoning traces do, so padding and packing matter."""
    r = random.Random(seed)
    words = "alpha beta gamma delta sum product prime square root equals therefore".split()
    return [{"question": f"What is {a} plus {b}?",
             "thinking": " ".join(r.choice(words) for _ in range(r.randint(10, 200))) + f" so {a + b}",
             "attempt": f"Answer: {a + b}"}
            for a, b in ((r.randint(1, 99), r.randint(1, 99)) for _ in range(n))]


def run_ours(data: Path, steps: int, **overrides) -> float:
    """Tokens/s over steps 2..N (step 1 pays one-off warm-up)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(dataset=str(data), output=out, block_size=BLOCK, global_batch_size=4, max_steps=steps,
                          learning_rate=1e-4, **overrides)
        train(cfg)
        rows = [json.loads(line) for line in (Path(out) / METRICS_FILE).read_text().splitlines()][1:]
    return sum(r["tokens"] for r in rows) / sum(r["step_seconds"] for r in rows)


def run_hf_baseline(records: list[dict], steps: int) -> tuple[str, float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thinkube.workloads.models import resolve_model

    path = resolve_model("tiny")[0]
    tok = AutoTokenizer.from_pretrained(path)
    exs, _ = build_examples([S1Record(**r) for r in records], tok, S1_FORMAT, BLOCK, "truncate")
    if importlib.util.find_spec("accelerate"):
        return "HF Trainer", _hf_trainer(path, exs, steps)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    tokens, seconds = 0, 0.0
    for step in range(steps):
        batch = [exs[i] for i in torch.randint(len(exs), (4,), generator=gen).tolist()]
        t0 = time.perf_counter()
        for ex in batch:  # micro batch 1, accumulation 4, as the s1 recipe
            ids = torch.tensor([ex.input_ids])
            (model(input_ids=ids, labels=torch.tensor([ex.labels])).loss / 4).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if step:  # skip warm-up, as for ours
            tokens += sum(len(e.input_ids) for e in batch)
            seconds += time.perf_counter() - t0
    return "HF compute path without Trainer (accelerate not installed)", tokens / seconds


def _hf_trainer(path: str, exs, steps: int) -> float:
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in exs]
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=1,
                             gradient_accumulation_steps=4, max_steps=steps, learning_rate=1e-4,
                             report_to=[], use_cpu=True, save_strategy="no", logging_steps=10**9)
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), args=args,
                      train_dataset=rows, data_collator=lambda b: {k: torch.tensor([x[k] for x in b]) for k in b[0]})
    t0 = time.perf_counter()
    trainer.train()
    return sum(len(e.input_ids) for e in exs[:steps * 4]) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the overlong warning would repeat per run
    torch.manual_seed(0)
    records = make_records(a.records)
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "records.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in records))
        print(f"tiny model, CPU, {torch.get_num_threads()} threads, {a.records} records, block {BLOCK}, "
              f"global batch 4, {a.steps} steps")
        print("TRL: " + ("installed" if importlib.util.find_spec("trl") else "not installed (no SFTTrainer baseline)"))
        # The machine may be shared: interleave the variants and keep each one's best run,
        # so a burst of foreign load does not decide a comparison.
        best: dict[str, float] = {}
        name = ""
        for _ in range(a.repeats):
            for key, fn in (("ours", lambda: run_ours(data, a.steps)),
                            ("base", lambda: run_hf_baseline(records, a.steps)),
                            ("unpacked", lambda: run_ours(data, a.steps, micro_batch_size=4)),
                            ("packed", lambda: run_ours(data, a.steps, micro_batch_size=4, packing=True))):
                value = fn()
                if key == "base":
                    name, value = value
                best[key] = max(best.get(key, 0.0), value)
        print(f"best of {a.repeats} interleaved runs each")
        print(f"1. thinkube loop (micro batch 1): {best['ours']:8.0f} tokens/s")
        print(f"   {name}: {best['base']:8.0f} tokens/s   ratio {best['ours'] / best['base']:.2f}")
        print(f"2. useful tokens/s, micro batch 4: unpacked (padded) {best['unpacked']:8.0f}, "
              f"packed {best['packed']:8.0f}   ratio {best['packed'] / best['unpacked']:.2f}")

if __name__ == "__main__":
    main()
