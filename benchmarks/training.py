"""Training benchmark: `python benchmarks/training.py` (CPU, the tiny model, a few minutes).

Needs TRL: `pip install -e .[bench]`. Both trainers get the same tiny model, the same records
rendered as (prompt, completion) with the loss on the completion only, the same block /
max length, global batch and number of optimizer steps, fp32, AdamW(0.9, 0.95) (SFTTrainer
keeps its default fused kernel), wd 1e-4, clipping 1.0, warm-up + cosine, no checkpoints or
eval. Throughput is non-pad tokens per second of wall time from the end of optimizer step 1
to the end of step N (model load, data preparation and step 1's warm-up excluded; per-step
logging/metrics included), for both.

1. Micro batch 1, accumulation 4 (the s1 recipe): thinkube's loop vs TRL's SFTTrainer.
2. Packing, micro batch 4: useful (non-pad) tokens/s of thinkube's loop vs SFTTrainer's
   packing (its default BFD, padding-free), and of thinkube's loop packed vs padded.
Single process: the comparison is of the loop, not of FSDP (see tests/unit/test_train_loop.py).
On a shared machine run it with OMP_NUM_THREADS=1: with a core taken by foreign work, every
multi-threaded op waits on the preempted thread and the tokens/s of either trainer drop up to
40x, which decides the comparison more than the trainers do.
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

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from thinkube.api.stages.train import TrainConfig  # noqa: E402
from thinkube.workloads.formats import S1_FORMAT, S1Record, render_training_example  # noqa: E402
from thinkube.workloads.training.loop import train  # noqa: E402
from thinkube.workloads.training.progress import METRICS_FILE  # noqa: E402

BLOCK = 512
GLOBAL_BATCH = 4
LR = 1e-4


def make_records(n: int, seed: int = 0) -> list[dict]:
    """Lengths vary 10x, as reasoning traces do, so padding and packing matter."""
    r = random.Random(seed)
    words = "alpha beta gamma delta sum product prime square root equals therefore".split()
    return [
        {
            "question": f"What is {a} plus {b}?",
            "thinking": " ".join(r.choice(words) for _ in range(r.randint(10, 200))) + f" so {a + b}",
            "attempt": f"Answer: {a + b}",
        }
        for a, b in ((r.randint(1, 99), r.randint(1, 99)) for _ in range(n))
    ]


def run_ours(data: Path, steps: int, micro_batch: int = 1, packing: bool = False) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(
            dataset=str(data),
            output=out,
            block_size=BLOCK,
            global_batch_size=GLOBAL_BATCH,
            micro_batch_size=micro_batch,
            packing=packing,
            max_steps=steps,
            learning_rate=LR,
            gradient_checkpointing=False,
        )  # as SFTTrainer's default here
        train(cfg)
        rows = [json.loads(line) for line in (Path(out) / METRICS_FILE).read_text().splitlines()]
    return sum(r["tokens"] for r in rows[1:]) / (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"])


class StepClock(transformers.TrainerCallback):
    """(time, non-pad input tokens so far) at the end of every optimizer step."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen))


def run_trl(records: list[dict], steps: int, micro_batch: int = 1, packing: bool = False) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from thinkube.workloads.models import resolve_model

    path = resolve_model("tiny")[0]
    pairs = [render_training_example(S1Record(**r), S1_FORMAT, index=i) for i, r in enumerate(records)]
    dataset = datasets.Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            max_length=BLOCK,
            per_device_train_batch_size=micro_batch,
            gradient_accumulation_steps=GLOBAL_BATCH // micro_batch,
            max_steps=steps,
            learning_rate=LR,
            adam_beta1=0.9,
            adam_beta2=0.95,
            weight_decay=1e-4,
            max_grad_norm=1.0,
            lr_scheduler_type="cosine",
            warmup_steps=0.05,
            packing=packing,
            completion_only_loss=True,
            include_num_input_tokens_seen="non_padding",
            save_strategy="no",
            eval_strategy="no",
            logging_steps=steps,
            disable_tqdm=True,
            report_to=[],
            seed=42,
        )
        clock = StepClock()
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
            args=args,
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(path),
            callbacks=[clock],
        )
        trainer.remove_callback(PrinterCallback)  # its end-of-training summary
        trainer.train()
    (t1, n1), (tn, nn) = clock.marks[0], clock.marks[-1]
    return (nn - n1) / (tn - t1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    missing = [m for m in ("trl", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"the SFTTrainer baseline needs {' and '.join(missing)}: pip install -e .[bench]")
    logging.basicConfig(level=logging.ERROR)  # the overlong warning would repeat per run
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    records = make_records(a.records)
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "records.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in records))
        print(
            f"tiny model, CPU, {torch.get_num_threads()} threads, {a.records} records, block {BLOCK}, "
            f"global batch {GLOBAL_BATCH}, {a.steps} steps"
        )
        # The machine may be shared: interleave the variants and keep each one's best run,
        # so a burst of foreign load does not decide a comparison.
        best: dict[str, float] = {}
        for _ in range(a.repeats):
            for key, fn in (
                ("ours", lambda: run_ours(data, a.steps)),
                ("trl", lambda: run_trl(records, a.steps)),
                ("packed", lambda: run_ours(data, a.steps, micro_batch=4, packing=True)),
                ("trl_packed", lambda: run_trl(records, a.steps, micro_batch=4, packing=True)),
                ("unpacked", lambda: run_ours(data, a.steps, micro_batch=4)),
            ):
                best[key] = max(best.get(key, 0.0), fn())
        print(f"best of {a.repeats} interleaved runs each")
        print(
            f"1. micro batch 1: thinkube loop {best['ours']:8.0f} tokens/s, TRL SFTTrainer {best['trl']:8.0f} "
            f"tokens/s   ratio {best['ours'] / best['trl']:.2f}"
        )
        print(
            f"2. packing, micro batch 4, useful tokens/s: thinkube loop {best['packed']:8.0f}, TRL SFTTrainer "
            f"{best['trl_packed']:8.0f}   ratio {best['packed'] / best['trl_packed']:.2f}"
        )
        print(
            f"   thinkube loop unpacked (padded) {best['unpacked']:8.0f}   packed/unpacked "
            f"{best['packed'] / best['unpacked']:.2f}"
        )


if __name__ == "__main__":
    main()
