"""The demo's stages, each a real Thinkube command on the tiny model:

data    generate the question pool and the held-out benchmark (tasks.py, data.py)
curate  `thinkube curate`: the demo's synthetic teacher, served by `thinkube serve
        --engine demo-teacher`, writes the traces (distill stage), and the *untrained* tiny
        model, served by `thinkube serve`, is the difficulty filter's base model
train   `thinkube train` under torchrun (FSDP2 over gloo, cfg.nproc processes)
eval    `thinkube serve` on the trained model, then `thinkube eval` over thinking budgets

A stage whose `done.json` carries the current fingerprint is reused; the first one that
changed, and everything after it, runs again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from thinkube.workloads.demo import data
from thinkube.workloads.demo.config import STAGES, DemoConfig
from thinkube.workloads.demo.report import train_summary
from thinkube.workloads.demo.teacher import ENGINE as TEACHER_ENGINE
from thinkube.workloads.serving.process import ServeProcess, free_port
from thinkube.workloads.training.progress import METRICS_FILE

log = logging.getLogger(__name__)

DONE = "done.json"
BASE_MODEL_NAME, TRAINED_MODEL_NAME, TEACHER_NAME = "tiny-untrained", "thinkube-demo", "demo-teacher"
POOL_NAME = "synthetic"
# Decontamination n-gram size. s1's 8 word-grams fit long natural-language questions; these
# are short templates ("Sum mod 10: A 7 B 3 ..."), where 8 words of keys and template would
# match unrelated questions. 18 words is the shortest benchmark question (5 digits).
NGRAM = 18
SERVER_START_S = 600
CONCURRENCY = 16  # model calls / evaluation requests in flight
# Completion cap of a teacher call: the longest trace and attempt are ~60 tokens, so only a
# looping teacher (a planted unreadable question) reaches it.
TEACHER_MAX_TOKENS = 96


class StageFailed(RuntimeError):
    """A stage's command failed; the message names the stage and its log file."""


@dataclass
class Stage:
    name: str
    folder: Path
    fingerprint: str

    def done(self) -> dict | None:
        path = self.folder / DONE
        if path.exists():
            info = json.loads(path.read_text())
            if info.get("fingerprint") == self.fingerprint:
                return info
        return None

    def clear_if_stale(self) -> None:
        """A finished run with other settings is removed before the stage runs again (the
        commands would otherwise resume from it); an unfinished one is kept to resume."""
        if (self.folder / DONE).exists() and self.done() is None:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def finish(self, info: dict) -> dict:
        info = {"stage": self.name, "fingerprint": self.fingerprint, **info}
        (self.folder / DONE).write_text(json.dumps(info, indent=1))
        return info


def _run_logged(cmd: list[str], log_path: Path, stage: str, env: dict | None = None, echo: str = "") -> None:
    """Runs `cmd`, writing its output to `log_path` and echoing lines containing `echo`
    (progress lines with rates) to the console."""
    with log_path.open("w") as f:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
        )
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            f.write(line)
            if echo and echo in line:
                print(f"  [{stage}] {line.rstrip()[-160:]}", flush=True)
        code = proc.wait()
    if code != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        raise StageFailed(f"{stage}: `{' '.join(cmd[:6])} ...` exited {code}; full log {log_path}\n{tail}")


def _serve(model: str, name: str, engine: str, cfg: DemoConfig, log_path: Path) -> ServeProcess:
    log.info("starting thinkube serve --model %s (engine %s); log %s", model, engine, log_path)
    return ServeProcess(
        "--model",
        model,
        "--served-model-name",
        name,
        "--engine",
        engine,
        "--default-max-tokens",
        str(cfg.max_tokens),
        log_path=log_path,
    ).wait(SERVER_START_S)


def run_data(cfg: DemoConfig, stage: Stage) -> dict:
    written = data.write(cfg.data, stage.folder)
    return {
        "pool": str(written.pool),
        "benchmark": str(written.benchmark),
        "pool_rows": written.pool_rows,
        "benchmark_items": cfg.data.benchmark_size,
    }


def run_curate(cfg: DemoConfig, stage: Stage, inputs: dict) -> dict:
    from thinkube.api.stages.curate import SELECTED_JSONL, CurateConfig, TeacherConfig
    from thinkube.workloads.curation.pipeline import run as curate

    with (
        _serve("tiny", TEACHER_NAME, TEACHER_ENGINE, cfg, stage.folder / "teacher-server.log") as teacher,
        _serve("tiny", BASE_MODEL_NAME, cfg.engine, cfg, stage.folder / "base-server.log") as base,
    ):
        ccfg = CurateConfig(
            out=str(stage.folder / "run"),
            pools={POOL_NAME: inputs["pool"]},
            teacher=TeacherConfig(
                endpoint=f"{teacher.url}@{TEACHER_NAME}", max_tokens=TEACHER_MAX_TOKENS, concurrency=CONCURRENCY
            ),
            decontaminate={data.BENCHMARK_NAME: inputs["benchmark"]},
            ngram=NGRAM,
            base_models=[f"{base.url}@{BASE_MODEL_NAME}"],
            answer_kinds={POOL_NAME: "integer"},
            max_tokens=cfg.base_max_tokens,
            concurrency=CONCURRENCY,
            domain_column="domain",
            tokenizer="tiny",
            target_size=cfg.select,
            seed=cfg.data.seed,
        )
        report = curate(ccfg)
    return {"selected": str(stage.folder / "run" / SELECTED_JSONL), "report": report}


def run_train(cfg: DemoConfig, stage: Stage, inputs: dict) -> dict:
    from thinkube.api.stages.train import TrainConfig

    out = stage.folder / "run"
    train_cfg = TrainConfig(
        **cfg.train_recipe().model_dump(), model="tiny", dataset=inputs["selected"], output=str(out)
    )
    config_path = stage.folder / "train.json"
    config_path.write_text(train_cfg.to_json())
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={cfg.nproc}",
        f"--master-port={free_port()}",
        "-m",
        "thinkube.cli",
        "train",
        "--config",
        str(config_path),
    ]
    # One thread per process: cfg.nproc processes share the machine's cores.
    _run_logged(cmd, stage.folder / "train.log", "train", env={"OMP_NUM_THREADS": "1"}, echo="loss")
    summary = train_summary(out / METRICS_FILE)
    if not summary:
        raise StageFailed(f"train: {out / METRICS_FILE} holds no step; see {stage.folder / 'train.log'}")
    return {"model": str(out / "final"), **summary}


def run_eval(cfg: DemoConfig, stage: Stage, inputs: dict, bench: str) -> dict:
    from thinkube.workloads.evaluation.report import PLOT_PNG, RESULTS_JSON

    out = stage.folder / "sweep"
    with _serve(inputs["model"], TRAINED_MODEL_NAME, cfg.engine, cfg, stage.folder / "server.log") as server:
        cmd = [
            sys.executable,
            "-m",
            "thinkube.cli",
            "eval",
            "--target",
            server.url,
            "--model",
            TRAINED_MODEL_NAME,
            "--benchmark",
            f"{data.BENCHMARK_NAME}={bench}",
            "--out",
            str(out),
            "--max-thinking-tokens",
            ",".join(map(str, cfg.budgets)),
            "--num-ignore",
            ",".join(map(str, cfg.num_ignore)),
            "--max-tokens",
            str(cfg.max_tokens),
            "--concurrency",
            str(CONCURRENCY),
            "--no-progress",
        ]  # progress comes as log lines with rates
        _run_logged(cmd, stage.folder / "eval.log", "eval", echo="sweep:")
    return {"results": str(out / RESULTS_JSON), "plot": str(out / PLOT_PNG)}


def run(cfg: DemoConfig) -> dict:
    """Runs (or reuses) every stage in order and returns each stage's done-info."""
    root = Path(cfg.out)
    results: dict[str, dict] = {}
    for name in STAGES:
        stage = Stage(name, root / name, cfg.fingerprint(name))
        reused = stage.done()
        if reused is not None:
            print(f"[demo] {name}: reusing {stage.folder} (settings unchanged)", flush=True)
            results[name] = reused
            continue
        if name not in cfg.stages:
            if not any(later in cfg.stages for later in STAGES[STAGES.index(name) + 1 :]):
                break  # nothing selected after this stage: stop here
            raise StageFailed(
                f"{name}: a later stage needs it, but it is not in --stages and {stage.folder} holds "
                f"no finished run with these settings; add {name} to --stages"
            )
        print(f"[demo] {name}: running", flush=True)
        stage.clear_if_stale()
        start = time.monotonic()
        info = {
            "data": lambda: run_data(cfg, stage),
            "curate": lambda: run_curate(cfg, stage, results["data"]),
            "train": lambda: run_train(cfg, stage, results["curate"]),
            "eval": lambda: run_eval(cfg, stage, results["train"], results["data"]["benchmark"]),
        }[name]()
        info["seconds"] = round(time.monotonic() - start, 1)
        results[name] = stage.finish(info)
        print(f"[demo] {name}: done in {info['seconds']:.0f} s", flush=True)
    return results
