"""The training loop end to end on the tiny model (CPU): 1 process, torchrun with 2
processes, 2 "nodes" on 127.0.0.1, kill-and-resume, the final model's reload, and progress
reports to a control plane (a real HTTP server on 127.0.0.1).

Every run uses the same data, global batch 4 and max_steps 6 (two epochs of 3 steps), so
the LR schedule and the batches are identical and the losses must agree step by step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.unit.test_train_data_config import make_records
from tests.unit.test_train_progress import ProgressServer, token_file
from thinkube.api.resources.sft import TrainingProgress
from thinkube.constants import ENV_PROGRESS_EVERY_S, ENV_PROGRESS_TOKEN_FILE, ENV_PROGRESS_URL, EXIT_RETRIABLE
from thinkube.workloads.serving.process import free_port

STEPS = 6
TIMEOUT = 240


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("train-data") / "records.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in make_records(12)))
    return p


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "thinkube.cli",
        "train",
        "--dataset",
        str(data),
        "--output",
        str(out),
        "--block-size",
        "256",
        "--global-batch-size",
        "4",
        "--max-steps",
        str(STEPS),
        "--learning-rate",
        "1e-3",
        *extra,
    ]


def env() -> dict[str, str]:
    # One thread per process: the runs share two cores, and oversubscription is slower.
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_single(data: Path, out: Path, *extra: str, **more_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *train_args(data, out, *extra)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**env(), **more_env},
    )


def torchrun(*launcher: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher]


def outputs(procs: list[subprocess.Popen]) -> list[str]:
    """Each process's output; past TIMEOUT all are killed and every output is shown, not just the first's."""
    deadline = time.monotonic() + TIMEOUT
    try:
        return [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("timed out:\n" + "\n-----\n".join(p.communicate()[0][-3000:] for p in procs))


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def assert_same_losses(a: dict[int, float], b: dict[int, float]) -> None:
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-4), f"step {step}"


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """One uninterrupted single-process run, checkpointing every 2 steps."""
    out = tmp_path_factory.mktemp("single")
    p = run_single(data, out, "--save-every", "2")
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_single_process_trains_logs_and_checkpoints(reference):
    loss = losses(reference)
    assert loss[STEPS] < loss[1]  # it learns
    assert sorted(p.name for p in reference.glob("step-*")) == ["step-000002", "step-000004"]
    assert all((p / "COMPLETE").is_file() and (p / "train_config.json").is_file() for p in reference.glob("step-*"))
    row = json.loads((reference / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss", "lr", "tokens_per_s", "eta_s", "grad_norm"} <= set(row)
    assert json.loads((reference / "final" / "train_config.json").read_text())["global_batch_size"] == 4


def test_final_model_reloads_with_from_pretrained(reference):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(reference / "final")
    tok = AutoTokenizer.from_pretrained(reference / "final")
    ids = tok("What is 2 plus 2?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()


def test_two_processes_match_one(data, reference, tmp_path):
    out = tmp_path / "fsdp"
    p = subprocess.run(
        torchrun("--nproc_per_node=2", "--master-port", str(free_port()), *train_args(data, out)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env(),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert_same_losses(losses(out), losses(reference))


def test_two_nodes_on_localhost_match_one(data, reference, tmp_path):
    out, port = tmp_path / "nodes", str(free_port())
    procs = [
        subprocess.Popen(
            torchrun(
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                *train_args(data, out),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env(), "NNODES": "2", "NODE_RANK": str(rank), "NPROC_PER_NODE": "1"},
        )
        for rank in (0, 1)
    ]
    logs = outputs(procs)
    # Both ranks exit 0: a rank that aborts in torch's teardown after finishing would fail its pod.
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "nnodes=2" in logs[0]
    assert_same_losses(losses(out), losses(reference))


def test_crash_then_resume_matches_uninterrupted(data, reference, tmp_path):
    out = tmp_path / "resume"
    crashed = run_single(data, out, "--save-every", "2", "--stop-after-steps", "4")
    assert crashed.returncode == EXIT_RETRIABLE
    # A crash mid-save leaves a .tmp folder: it must be ignored and removed, never resumed from.
    (out / "step-000006.tmp").mkdir()
    resumed = run_single(data, out, "--save-every", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "step-000004 (step 4)" in resumed.stderr
    assert not (out / "step-000006.tmp").exists()
    # metrics.jsonl holds steps 1-4 from the first run and 5-6 from the resumed one.
    assert_same_losses(losses(out), losses(reference))


def test_resume_on_another_world_size_matches_uninterrupted(data, reference, tmp_path):
    """Checkpoints are sharded per rank (torch.distributed.checkpoint): 2 ranks write, 1 reads."""
    out = tmp_path / "reshard"
    crashed = subprocess.run(
        torchrun(
            "--nproc_per_node=2",
            "--master-port",
            str(free_port()),
            *train_args(data, out, "--save-every", "2", "--stop-after-steps", "4"),
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env(),
    )
    assert crashed.returncode != 0 and (out / "step-000004" / "COMPLETE").is_file(), crashed.stderr[-3000:]
    assert json.loads((out / "step-000004" / "trainer_state.json").read_text())["world_size"] == 2
    resumed = run_single(data, out, "--save-every", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step-000004 (step 4)" in resumed.stderr
    assert_same_losses(losses(out), losses(reference))


def reporting_env(url: str, token: Path) -> dict[str, str]:
    # Every step may be reported (a real run: every 10 s), so a short run makes several posts.
    return {ENV_PROGRESS_URL: url, ENV_PROGRESS_TOKEN_FILE: str(token), ENV_PROGRESS_EVERY_S: "0"}


def test_progress_reports_reach_the_control_plane(data, reference, tmp_path):
    with ProgressServer() as server:
        p = run_single(data, tmp_path / "out", **reporting_env(server.url, token_file(tmp_path, "tok-1")))
    assert p.returncode == 0, p.stderr[-3000:]
    assert server.posts and {auth for _, auth, _ in server.posts} == {"Bearer tok-1"}
    reports = [TrainingProgress.model_validate(body) for _, _, body in server.posts]
    steps = [r.step for r in reports]
    assert steps == sorted(steps) and {r.total_steps for r in reports} == {STEPS}
    last = reports[-1]
    assert last.step == STEPS and last.epoch == 2.0 and last.eta_seconds == 0.0
    assert last.loss == losses(tmp_path / "out")[STEPS] and last.tokens_per_second
    assert_same_losses(losses(tmp_path / "out"), losses(reference))


@pytest.mark.parametrize("listening", [True, False], ids=["http-500", "not-listening"])
def test_training_is_unaffected_when_reports_fail(data, reference, tmp_path, listening):
    with ProgressServer(status=500) as server:
        url = server.url if listening else f"http://127.0.0.1:{free_port()}/progress"
        p = run_single(data, tmp_path / "out", **reporting_env(url, token_file(tmp_path)))
    assert p.returncode == 0, p.stderr[-3000:]
    assert bool(server.posts) == listening
    assert p.stderr.count("progress report to") == 1  # one warning a minute, not one per step
    assert_same_losses(losses(tmp_path / "out"), losses(reference))
    assert (tmp_path / "out" / "final" / "train_config.json").is_file()


def test_a_rotated_token_is_used_from_the_next_report(data, tmp_path):
    token = token_file(tmp_path, "before")

    def rotate(n: int) -> None:
        if n == 1:
            token.write_text("after\n")  # as the kubelet does, mid-run

    with ProgressServer(on_post=rotate) as server:
        p = run_single(data, tmp_path / "out", **reporting_env(server.url, token))
    assert p.returncode == 0, p.stderr[-3000:]
    auths = [auth for _, auth, _ in server.posts]
    assert len(auths) >= 2 and auths[0] == "Bearer before" and set(auths[1:]) == {"Bearer after"}
    assert server.posts[-1][2]["step"] == STEPS


@pytest.fixture(scope="module")
def larger_model(tmp_path_factory) -> tuple[Path, int, int]:
    """A random Qwen2 of ~100M parameters in fp32 (the tiny model's tokenizer): large enough
    that its weights, not the imports, decide a process's memory. (folder, bytes, largest tensor bytes)"""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from thinkube.workloads.models import resolve_model

    tiny, _ = resolve_model("tiny")
    config = AutoConfig.from_pretrained(tiny)
    config.update(
        {
            "hidden_size": 1024,
            "intermediate_size": 2816,
            "num_hidden_layers": 8,
            "num_attention_heads": 16,
            "num_key_value_heads": 4,
            "head_dim": 64,
            "layer_types": ["full_attention"] * 8,
        }
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    folder = tmp_path_factory.mktemp("larger-model")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    sizes = [p.numel() * 4 for p in model.parameters()]
    return folder, sum(sizes), max(sizes)


def test_each_rank_holds_only_its_share_of_the_model(data, larger_model, tmp_path):
    folder, model_bytes, largest = larger_model
    out = tmp_path / "memory"
    p = subprocess.run(
        torchrun(
            "--nproc_per_node=2",
            "--master-port",
            str(free_port()),
            *train_args(data, out, "--model", str(folder), "--block-size", "64")[:-2],
            "--learning-rate",
            "1e-4",
            "--max-steps",
            "1",
            "--no-gradient-checkpointing",
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env(),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    grown = {
        int(m[0]): float(m[1])
        for m in re.findall(
            r"rank (\d+): model loaded .*host memory for the model "
            r"\+(\d+) MiB",
            p.stderr,
        )
    }
    assert sorted(grown) == [0, 1], p.stderr[-3000:]
    # Its half of the weights, one tensor in flight, and allocator slack: never the whole model,
    # which is what every rank held when it loaded the model before sharding it.
    bound = (model_bytes / 2 + largest) / 2**20 + 64
    assert all(mib < bound < model_bytes / 2**20 for mib in grown.values()), (grown, bound, model_bytes / 2**20)
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(out / "final")  # gathered tensor by tensor, in safetensors shards
    assert (out / "final" / "model.safetensors.index.json").is_file()
    assert sum(t.numel() for t in final.parameters()) * 4 == model_bytes
