"""Training config precedence, the loss mask, overlong handling, packing, sharding, bad input."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch

from thinkube.api.stages.loader import BadConfig, load
from thinkube.api.stages.train import TrainConfig, TrainRecipe
from thinkube.cli import build_parser, main
from thinkube.constants import ENV_CONFIG, EXIT_BAD_CONFIG
from thinkube.workloads.formats import S1_FORMAT, S1Record, render_training_example
from thinkube.workloads.training.data import (
    IGNORE,
    GlobalBatches,
    as_row,
    build_examples,
    collate,
    pack,
    tokenize_example,
)
from thinkube.workloads.training.distributed import node_rank
from thinkube.workloads.training.loop import warmup_cosine


def make_records(n: int, seed: int = 0, long_every: int = 0) -> list[dict]:
    import random

    r = random.Random(seed)
    words = "alpha beta gamma delta sum product prime square root equals therefore".split()
    out = []
    for i in range(n):
        a, b = r.randint(1, 99), r.randint(1, 99)
        k = 400 if long_every and i % long_every == 0 else r.randint(5, 40)
        out.append(
            {
                "question": f"What is {a} plus {b}?",
                "thinking": " ".join(r.choice(words) for _ in range(k)) + f" so {a}+{b}={a + b}",
                "attempt": f"Answer: {a + b}",
            }
        )
    return out


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from thinkube.workloads.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("tiny")[0])


def records(n: int, **kw) -> list[S1Record]:
    return [S1Record(**r) for r in make_records(n, **kw)]


def test_defaults_are_the_s1_recipe():
    c = TrainRecipe()
    assert (c.epochs, c.global_batch_size, c.micro_batch_size, c.learning_rate) == (5, 16, 1, 1e-5)
    assert (c.warmup_ratio, c.adam_beta1, c.adam_beta2, c.weight_decay) == (0.05, 0.9, 0.95, 1e-4)
    assert (c.block_size, c.packing, c.precision, c.max_grad_norm) == (32768, False, "auto", 1.0)
    assert c.gradient_checkpointing and c.lr_scheduler == "cosine" and c.fsdp == "full_shard"


def test_precedence_flags_over_file_over_defaults(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text("dataset: d.jsonl\nepochs: 3\nlearning-rate: 2e-5\npacking: true\n")
    args = build_parser().parse_args(["train", "--config", str(f), "--learning-rate", "3e-5"])
    flags = {k: getattr(args, k) for k in TrainConfig.model_fields}
    cfg = load(TrainConfig, flags, args.config, environ={})
    assert (cfg.epochs, cfg.learning_rate, cfg.packing, cfg.global_batch_size) == (3, 3e-5, True, 16)
    # The file may come from $THINKUBE_CONFIG (the operator's way); JSON and camelCase keys work too.
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"dataset": "x", "blockSize": 512, "epochs": 4}))
    cfg = load(TrainConfig, {"epochs": 2}, None, environ={ENV_CONFIG: str(j)})
    assert (cfg.block_size, cfg.epochs, cfg.dataset) == (512, 2, "x")
    assert json.loads(cfg.to_json())["block_size"] == 512
    # Both files: --config over $THINKUBE_CONFIG, key by key.
    cfg = load(TrainConfig, {}, str(f), environ={ENV_CONFIG: str(j)})
    assert (cfg.block_size, cfg.epochs, cfg.learning_rate) == (512, 3, 2e-5)
    with pytest.raises(BadConfig, match="unknown setting"):
        j.write_text(json.dumps({"dataset": "x", "lr": 1}))
        load(TrainConfig, {}, str(j), environ={})
    with pytest.raises(BadConfig, match="epochs: Input should be greater than or equal to 1"):
        load(TrainConfig, {"dataset": "x", "epochs": 0}, environ={})
    with pytest.raises(BadConfig, match="no dataset: give --dataset"):
        load(TrainConfig, {}, environ={})


def test_accumulation_and_divisibility():
    assert TrainConfig(dataset="x").accumulation_steps(4) == 4
    with pytest.raises(BadConfig, match="not divisible"):
        TrainConfig(dataset="x", global_batch_size=6, micro_batch_size=2).accumulation_steps(2)


def test_loss_mask_covers_exactly_the_completion(tokenizer):
    rec = records(1)[0]
    prompt, completion = render_training_example(rec, S1_FORMAT)
    ex = tokenize_example(rec, tokenizer, S1_FORMAT, 0)
    labelled = [t for t in ex.labels if t != IGNORE]
    first = ex.labels.index(labelled[0])
    assert all(t == IGNORE for t in ex.labels[:first]) and ex.labels[first:] == ex.input_ids[first:]
    assert tokenizer.decode(labelled) == completion
    assert tokenizer.decode(ex.input_ids[:first]) == prompt
    assert completion.startswith("<|im_start|>think\n") and completion.endswith("<|im_end|>")


@pytest.mark.parametrize("policy", ["truncate", "drop"])
def test_overlong_examples_are_reported_never_silent(tokenizer, caplog, policy):
    recs = records(6, long_every=3)  # records 0 and 3 are ~400 words
    with caplog.at_level(logging.WARNING):
        exs, rep = build_examples(recs, tokenizer, S1_FORMAT, 256, policy)
    assert rep.overlong == 2 and "2 of 6 examples are longer than the block size 256" in caplog.text
    assert all(len(e.input_ids) <= 256 for e in exs)
    assert (rep.truncated, rep.dropped, len(exs)) == ((2, 0, 6) if policy == "truncate" else (0, 2, 4))
    with pytest.raises(BadConfig, match="overlong=error"):
        build_examples(recs, tokenizer, S1_FORMAT, 256, "error")


def test_packed_loss_equals_unpacked_loss_per_example(tokenizer):
    from transformers import AutoModelForCausalLM

    from thinkube.workloads.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny")[0], dtype=torch.float32).eval()
    exs, _ = build_examples(records(5), tokenizer, S1_FORMAT, 256, "error")
    rows = pack(exs, 256)
    assert len(rows) < len(exs)  # something really got packed

    def token_losses(batch):
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), reduction="none", ignore_index=IGNORE
        )

    packed = torch.cat([token_losses(collate([r], tokenizer.pad_token_id, True)) for r in rows])
    alone = torch.cat([token_losses(collate([as_row(e)], 0, False)) for e in exs])
    packed = packed[packed != 0]  # ignored positions are 0 in both; keep the real per-token losses
    assert torch.allclose(packed, alone[alone != 0], rtol=1e-4, atol=1e-5)
    # Padding a packed micro batch changes nothing either (pads are their own segment).
    padded = token_losses(collate(rows[:2], tokenizer.pad_token_id, True))
    single = torch.cat([token_losses(collate([r], tokenizer.pad_token_id, True)) for r in rows[:2]])
    assert torch.allclose(padded[padded != 0], single[single != 0], rtol=1e-4, atol=1e-5)


def test_sharding_partitions_each_global_batch_deterministically(tokenizer):
    exs, _ = build_examples(records(10), tokenizer, S1_FORMAT, 256, "error")
    gb = GlobalBatches([as_row(e) for e in exs], global_batch=4, micro_batch=1, seed=3)
    assert gb.steps_per_epoch == 3  # 10 rows wrap around to 12
    for step in range(6):
        whole = [r.input_ids for mb in gb.micro_batches(step, 0, 1) for r in mb]
        parts = [r.input_ids for rank in range(2) for mb in gb.micro_batches(step, rank, 2) for r in mb]
        assert sorted(whole) == sorted(parts) and len(whole) == 4
    assert gb.indices(0) != gb.indices(3)  # a new permutation each epoch
    assert gb.indices(4) == GlobalBatches(gb.rows, 4, 1, 3).indices(4)


def test_warmup_then_cosine_to_zero():
    f = warmup_cosine(100, 0.05)
    assert f(0) == 0 and f(5) == pytest.approx(1.0) and f(2) == pytest.approx(0.4)
    assert f(52) == pytest.approx(0.5, abs=0.02) and f(100) == pytest.approx(0.0, abs=1e-12)


def test_node_rank_falls_back_to_job_completion_index():
    assert node_rank({"NODE_RANK": "1", "JOB_COMPLETION_INDEX": "3"}) == 1
    assert node_rank({"JOB_COMPLETION_INDEX": "3"}) == 3
    assert node_rank({}) == 0


def test_missing_dataset_exits_2_with_one_message(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkube.cli",
            "train",
            "--dataset",
            str(tmp_path / "nope.jsonl"),
            "--output",
            str(tmp_path / "out"),
            "--block-size",
            "256",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == EXIT_BAD_CONFIG
    assert "thinkube train: dataset" in p.stderr and "nope.jsonl" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "case,message",
    [
        ("empty", "empty"),
        ("model", "cannot be loaded"),
        ("block", "exceeds the model's max_position_embeddings 4096"),
        ("batch", "not divisible"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, case, message):
    data = tmp_path / "d.jsonl"
    data.write_text("" if case == "empty" else "\n".join(json.dumps(r) for r in make_records(4)))
    argv = ["train", "--dataset", str(data), "--output", str(tmp_path / "out"), "--block-size", "256"]
    argv += {
        "empty": [],
        "model": ["--model", str(tmp_path / "no-model")],
        "block": ["--block-size", "8192"],
        "batch": ["--global-batch-size", "3", "--micro-batch-size", "2"],
    }[case]
    assert main(argv) == EXIT_BAD_CONFIG
    assert message in capsys.readouterr().err
