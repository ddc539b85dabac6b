"""The curation pipeline, one command instead of s1's notebooks with manual hand-offs.

Stages run in order; each persists its kept rows, its dropped rows (with the reason) and a
`done` marker carrying a fingerprint of its inputs and settings under `<out>/stages/`.
A rerun reuses every stage whose fingerprint still matches and recomputes from the first
that changed; model calls are cached on top (cache.py), so a stage killed midway resumes
without repeating a finished call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from thinkube.api.stages.curate import SELECTED_JSONL, SELECTED_PARQUET, CurateConfig
from thinkube.workloads.curation import decontam, difficulty, distill, domains, ingest, quality, report, select, trace
from thinkube.workloads.curation.cache import CallCache
from thinkube.workloads.curation.rows import StageResult, prov
from thinkube.workloads.formats import S1Record, save_records
from thinkube.workloads.uris import local_path, parse_uri

log = logging.getLogger(__name__)

STAGES_DIR, CACHE_FILE = "stages", "cache/calls.jsonl"

StageFn = Callable[[list[S1Record]], "StageResult | Awaitable[StageResult]"]


def _file_stamp(uri: str) -> list:
    """Size and mtime of a local source, so an edited file invalidates the stages built on it."""
    if parse_uri(uri).scheme not in ("file", "pvc"):
        return [uri]
    path = local_path(uri)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [uri, [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.exists()]]


def stage_settings(cfg: CurateConfig) -> dict[str, dict]:
    """What each stage's output depends on, besides its input rows (concurrency etc. do not count)."""
    return {
        "ingest": {"pools": {n: _file_stamp(u) for n, u in cfg.pools.items()}, "column_maps": cfg.column_maps},
        "dedupe": {},
        "decontaminate": {
            "benchmarks": {n: _file_stamp(u) for n, u in cfg.decontaminate.items()},
            "column": cfg.benchmark_question_column,
            "ngram": cfg.ngram,
        },
        # What the traces depend on (and the token budget, so a larger one goes on where a spent
        # one stopped); concurrency, rate limits and timeouts do not change them.
        "distill": {
            **cfg.teacher.model_dump(
                include={"endpoint", "regenerate", "max_tokens", "temperature", "grade_with_judge", "max_total_tokens"}
            ),
            "judge": cfg.judge,
            "answer_kinds": cfg.answer_kinds,
            "grade_column": cfg.teacher_grade_column,
        }
        if cfg.teacher
        else {},
        "quality": {"disable": sorted(cfg.disable_rules), "extra": cfg.extra_rules, "asy": cfg.asy_allowed_sources},
        "trace": {"tokenizer": cfg.tokenizer},
        "difficulty": {
            "base_models": cfg.base_models,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "seed": cfg.seed,
            "answer_kinds": cfg.answer_kinds,
            "judge": cfg.judge if cfg.grade_with_judge else None,
        },
        "domains": {"column": cfg.domain_column}
        if cfg.domain_column
        else {"judge": cfg.judge, "retries": cfg.domain_retries},
        "select": {
            "auto_include": [r.model_dump() for r in cfg.auto_include],
            "grade_column": cfg.teacher_grade_column,
            "target_size": cfg.target_size,
            "seed": cfg.seed,
            "allow_smaller": cfg.allow_smaller,
        },
    }


def _read_rows(path: Path) -> list[S1Record]:
    with path.open(encoding="utf-8") as f:
        return [S1Record.model_validate_json(line) for line in f if line.strip()]


class Pipeline:
    def __init__(self, cfg: CurateConfig):
        self.cfg = cfg
        self.out = local_path(cfg.out)
        self.stages_dir = self.out / STAGES_DIR
        self.summaries: list[dict] = []

    def _paths(self, i: int, name: str) -> tuple[Path, Path, Path]:
        base = self.stages_dir / f"{i:02d}_{name}"
        return base.with_suffix(".jsonl"), Path(f"{base}.dropped.jsonl"), Path(f"{base}.done.json")

    async def _stage(self, i: int, name: str, fingerprint: str, rows: list[S1Record], fn: StageFn) -> list[S1Record]:
        kept_path, dropped_path, done_path = self._paths(i, name)
        if done_path.exists():
            done = json.loads(done_path.read_text())
            if done["fingerprint"] == fingerprint:
                log.info("stage %s: reusing %s (%d rows)", name, kept_path, done["kept"])
                self.summaries.append(done)
                return _read_rows(kept_path)
        start = time.monotonic()
        result = fn(rows)
        if not isinstance(result, StageResult):  # an async stage
            result = await result
        seconds = time.monotonic() - start
        for r, reason in result.dropped:
            prov(r)["dropped"] = {"stage": name, "reason": reason}
        save_records(result.kept, kept_path)
        save_records([r for r, _ in result.dropped], dropped_path)
        summary = {
            "stage": name,
            "fingerprint": fingerprint,
            "in": len(rows),
            "kept": len(result.kept),
            "dropped": result.drop_counts(),
            "info": result.info,
            "seconds": round(seconds, 3),
            "kept_per_source": report.per_source(result.kept),
        }
        # The marker goes last: a stage killed before it is recomputed, never half-reused.
        done_path.write_text(json.dumps(summary, indent=1))
        self.summaries.append(summary)
        log.info(
            "stage %s: %d -> %d rows (dropped %d) in %.2f s (%.0f rows/s)",
            name,
            len(rows),
            len(result.kept),
            len(result.dropped),
            seconds,
            max(len(rows), len(result.kept)) / max(seconds, 1e-9),
        )
        return result.kept

    async def run(self) -> dict:
        cfg = self.cfg
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(cfg.model_dump_json(indent=1))
        cache = CallCache(self.out / CACHE_FILE)
        try:
            plan: list[tuple[str, StageFn]] = [
                ("ingest", lambda _: ingest.ingest(cfg)),
                ("dedupe", ingest.dedupe),
                ("decontaminate", self._decontaminate),
                ("distill", lambda rows: self._distill(rows, cache)),
                ("quality", lambda rows: quality.quality_filter(rows, quality.build_rules(cfg))),
                ("trace", lambda rows: trace.measure_traces(rows, cfg.tokenizer)),
                ("difficulty", lambda rows: self._difficulty(rows, cache)),
                ("domains", lambda rows: self._domains(rows, cache)),
                ("select", lambda rows: select.select(rows, cfg)),
            ]
            settings = stage_settings(cfg)
            fingerprint = ""
            rows: list[S1Record] = []
            for i, (name, fn) in enumerate(plan):
                fingerprint = hashlib.sha256(
                    json.dumps([fingerprint, name, settings[name]], sort_keys=True).encode()
                ).hexdigest()
                rows = await self._stage(i, name, fingerprint, rows, fn)
        finally:
            cache.close()
        save_records(rows, self.out / SELECTED_JSONL)
        save_records(rows, self.out / SELECTED_PARQUET)
        return report.write_reports(self.out, self.summaries, rows, cfg)

    def _decontaminate(self, rows: list[S1Record]) -> StageResult:
        questions = {
            name: decontam.benchmark_questions(name, uri, self.cfg.benchmark_question_column)
            for name, uri in self.cfg.decontaminate.items()
        }
        index = decontam.build_index(questions, self.cfg.ngram)
        result = decontam.decontaminate(rows, index, self.cfg.ngram)
        result.info.update({"benchmarks": {n: len(q) for n, q in questions.items()}, "ngrams": len(index)})
        return result

    async def _distill(self, rows: list[S1Record], cache: CallCache) -> StageResult:
        if self.cfg.teacher is None:
            return StageResult(rows, info={"skipped": "no teacher: the pools carry their traces"})
        return await distill.distill(rows, self.cfg, cache)

    async def _difficulty(self, rows: list[S1Record], cache: CallCache) -> StageResult:
        if not self.cfg.base_models:
            log.warning("difficulty: no --base-model given; stage skipped, no question is dropped as too easy")
            return StageResult(rows, info={"skipped": "no base models"})
        return await difficulty.difficulty_filter(rows, self.cfg, cache)

    async def _domains(self, rows: list[S1Record], cache: CallCache) -> StageResult:
        if self.cfg.domain_column:
            return domains.domains_from_column(rows, self.cfg.domain_column)
        judge = self.cfg.judge_endpoint()
        assert judge is not None  # the config's rules: a judge when there is no domain column
        return await domains.classify(rows, judge, self.cfg, cache)


def run(cfg: CurateConfig) -> dict:
    return asyncio.run(Pipeline(cfg).run())
