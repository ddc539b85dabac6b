"""The sweep: target x benchmarks x budget settings x n samples, graded as they arrive.

Jobs run on a fixed number of workers (the concurrency bound). Every finished sample is
appended to records/<benchmark>/<setting>.jsonl at once, so a sweep that stops for any
reason continues where it was: a rerun with the same --out skips recorded samples.
Cancelling (Ctrl-C, task.cancel()) stops handing out work, lets the requests in flight
finish and be recorded, then re-raises, so no answer already paid for is requested again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from thinkube.workloads.evaluation.benchmarks import Benchmark, BenchmarkItem
from thinkube.workloads.evaluation.records import RecordFile, record_key, record_path
from thinkube.workloads.evaluation.settings import BudgetSetting
from thinkube.workloads.evaluation.targets import Target
from thinkube.workloads.grading.grade import DEFAULT_TIMEOUT_S, grade
from thinkube.workloads.grading.judge import LLMJudge
from thinkube.workloads.progress import Progress

log = logging.getLogger(__name__)

META_FILE = "sweep.json"
# Options that change what a record means; a resumed sweep must keep them.
_FIXED = ("temperature", "seed", "max_tokens")


@dataclass(frozen=True)
class SweepConfig:
    n: int = 1
    temperature: float = 0.0
    seed: int = 0
    concurrency: int = 8
    max_tokens: int | None = None  # completion cap per request; None: the server's
    grade_timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


class SweepConflict(ValueError):
    """--out already holds records made with different fixed options."""


def sample_seed(seed: int, benchmark: str, item_id: str, sample: int) -> int:
    """Per-sample seed, the same for every setting: settings are compared on the same draws."""
    digest = hashlib.sha256(f"{seed}|{benchmark}|{item_id}|{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1  # 31 bits: every server accepts it


def _check_meta(out: Path, cfg: SweepConfig, target: Target) -> None:
    path = out / META_FILE
    fixed = {k: getattr(cfg, k) for k in _FIXED}
    if path.exists():
        before = json.loads(path.read_text())
        changed = [
            f"{k}: {before['fixed'].get(k)!r} -> {fixed[k]!r}" for k in _FIXED if before["fixed"].get(k) != fixed[k]
        ]
        if changed:
            raise SweepConflict(
                f"{out} holds records of a sweep with other options ({'; '.join(changed)}): "
                f"use another --out, or the same options to resume"
            )
        if before.get("target") != target.describe():
            log.warning(
                "resuming %s with a different target (%s, was %s)", out, target.describe(), before.get("target")
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fixed": fixed, "config": asdict(cfg), "target": target.describe()}, indent=2))


@dataclass
class _Job:
    benchmark: str
    item: BenchmarkItem
    setting: BudgetSetting
    sample: int
    file: RecordFile


class Sweep:
    def __init__(
        self,
        target: Target,
        benchmarks: Sequence[Benchmark],
        settings: Sequence[BudgetSetting],
        cfg: SweepConfig,
        out: Path,
        *,
        judge: LLMJudge | None = None,
        progress: bool = True,
    ):
        if not benchmarks or not settings:
            raise ValueError("a sweep needs at least one benchmark and one setting")
        keys = [s.key for s in settings]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate budget settings: {sorted(k for k in keys if keys.count(k) > 1)}")
        self.target, self.benchmarks, self.settings = target, list(benchmarks), list(settings)
        self.cfg, self.out, self.judge, self.progress = cfg, Path(out), judge, progress
        self._stop = False
        self._files: dict[tuple[str, str], RecordFile] = {}
        self._correct = self._graded = 0
        self._progress: Progress | None = None

    def _plan(self) -> tuple[list[_Job], int]:
        """The jobs still to run and the count already recorded.

        Order: item, then sample, then setting, so a partial sweep has every setting at
        the same items (comparable points), and a server's prefix cache sees the same
        prompt in a row.
        """
        done_keys: dict[tuple[str, str], set] = {}
        already = 0
        for bench in self.benchmarks:
            for setting in self.settings:
                f = RecordFile(record_path(self.out, bench.name, setting.key))
                self._files[bench.name, setting.key] = f
                records = f.load()
                done_keys[bench.name, setting.key] = {record_key(r) for r in records}
                wanted = {(item.id, s) for item in bench.items for s in range(self.cfg.n)}
                mine = [r for r in records if record_key(r) in wanted]
                already += len(mine)
                self._graded += len(mine)
                self._correct += sum(r["correct"] for r in mine)
        jobs = [
            _Job(bench.name, item, setting, sample, self._files[bench.name, setting.key])
            for bench in self.benchmarks
            for item in bench.items
            for sample in range(self.cfg.n)
            for setting in self.settings
            if (item.id, sample) not in done_keys[bench.name, setting.key]
        ]
        return jobs, already

    async def _run_job(self, job: _Job) -> None:
        cfg = self.cfg
        seed = sample_seed(cfg.seed, job.benchmark, job.item.id, job.sample)
        messages = [{"role": "user", "content": job.item.prompt}]
        started = time.monotonic()
        [gen] = await self.target.generate(
            messages, job.setting, n=1, temperature=cfg.temperature, seed=seed, max_tokens=cfg.max_tokens
        )
        latency = time.monotonic() - started
        grade_it = functools.partial(
            grade,
            job.item.kind,
            job.item.answer,
            gen.answer,
            n_choices=len(job.item.choices) or 4,
            timeout_s=cfg.grade_timeout_s,
        )
        # Symbolic (math) grading can take milliseconds to seconds of CPU: off the event loop,
        # so requests keep flowing. Integer and letter checks are microseconds: inline.
        verdict = await asyncio.to_thread(grade_it) if job.item.kind == "math" else grade_it()
        record = {
            "benchmark": job.benchmark,
            "setting": job.setting.key,
            "budget": job.setting.request_fields(),
            "item_id": job.item.id,
            "sample": job.sample,
            "seed": seed,
            "kind": job.item.kind,
            "prompt": job.item.prompt,
            "gold": job.item.answer,
            "thinking": gen.thinking,
            "answer": gen.answer,
            **verdict.to_dict(),
            "thinking_tokens": gen.thinking_tokens,
            "answer_tokens": gen.answer_tokens,
            "finish_reason": gen.finish_reason,
            "latency_s": round(latency, 3),
        }
        if self.judge is not None:
            record["judge"] = await self.judge.judge(job.item.prompt, job.item.answer, gen.answer)
        job.file.append(record)
        self._graded += 1
        self._correct += verdict.correct
        assert self._progress is not None  # run() makes it before any job starts
        self._progress.tick()

    def _accuracy(self) -> str:
        return f"accuracy so far {100 * self._correct / max(self._graded, 1):.1f}%"

    async def _worker(self, jobs: Iterator[_Job]) -> None:
        # A shared iterator: each worker takes the next job when it is free.
        for job in jobs:
            if self._stop:
                return
            await self._run_job(job)

    async def run(self) -> int:
        """Run what is left; returns the number of samples recorded by this call."""
        _check_meta(self.out, self.cfg, self.target)
        jobs, already = self._plan()
        total = already + len(jobs)
        log.info(
            "sweep: %d samples (%d benchmarks x %d settings x n=%d), %d already recorded, %d to run",
            total,
            len(self.benchmarks),
            len(self.settings),
            self.cfg.n,
            already,
            len(jobs),
        )
        # progress=False: log lines even on a terminal.
        self._progress = Progress(
            log,
            "sweep",
            total,
            done=already,
            unit="sample",
            figures=self._accuracy,
            bar=None if self.progress else False,
        )
        before = self._graded
        shared = iter(jobs)
        workers = [asyncio.create_task(self._worker(shared)) for _ in range(min(self.cfg.concurrency, len(jobs)))]
        try:
            if workers:
                try:
                    await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
                except asyncio.CancelledError:
                    self._stop = True
                    await asyncio.wait(workers)  # finish and record the requests in flight
                    raise
                self._stop = True  # one worker failed: the others finish their current job
                await asyncio.wait(workers)
                for w in workers:
                    if (error := w.exception()) is not None:
                        raise error
        finally:
            for f in self._files.values():
                f.close()
            self._progress.close()
        return self._graded - before
