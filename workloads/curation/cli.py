"""`thinkube curate`: select an s1K-style dataset from question pools.

Every option can also come from a YAML/JSON file (`--config`, and $THINKUBE_CONFIG in pods)
keyed by the field names of CurateConfig (thinkube.api.stages.curate): `pools: {numina:
/data/numina.parquet}`, `base_models: [http://qwen7b:8000@Qwen2.5-7B-Instruct]`, `teacher:
{endpoint: URL@MODEL}`; the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from thinkube.api.stages.curate import CurateConfig
from thinkube.api.stages.loader import load
from thinkube.constants import ENV_CONFIG, EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED

log = logging.getLogger(__name__)

# --flag (argparse dest) -> field of CurateConfig.teacher
TEACHER_FLAGS = {
    "teacher": "endpoint",
    "teacher_api_key_env": "api_key_env",
    "regenerate_traces": "regenerate",
    "teacher_max_tokens": "max_tokens",
    "teacher_temperature": "temperature",
    "teacher_concurrency": "concurrency",
    "teacher_rpm": "requests_per_minute",
    "teacher_tpm": "tokens_per_minute",
    "teacher_timeout": "timeout_seconds",
    "teacher_token_budget": "max_total_tokens",
    "grade_teacher_with_judge": "grade_with_judge",
}
# --flag (argparse dest) that is the CurateConfig field of the same name
SCALARS = (
    "benchmark_question_column",
    "ngram",
    "judge",
    "grade_with_judge",
    "domain_column",
    "tokenizer",
    "target_size",
    "seed",
    "allow_smaller",
    "max_tokens",
    "concurrency",
    "max_retries",
    "out",
    "teacher_grade_column",
)


def _pairs(entries: list[str], option: str, example: str) -> dict[str, str]:
    result = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option} {entry!r}: use NAME=VALUE, e.g. {example}")
        result[name] = value
    return result


def _benchmarks(entries: list[str]) -> dict[str, str]:
    """NAME=URI, or a bare URI named after its file."""
    result = {}
    for entry in entries:
        name, sep, uri = entry.partition("=")
        if not sep or "/" in name or ":" in name:
            name, uri = Path(entry.rstrip("/")).stem, entry
        result[name] = uri
    return result


def _column_maps(entries: list[str]) -> dict[str, dict[str, str]]:
    """`NAME:field=col,field=col` -> {NAME: {field: col}}."""
    result: dict[str, dict[str, str]] = {}
    for entry in entries:
        name, sep, spec = entry.partition(":")
        if not sep or not name or not spec:
            raise ValueError(f"--column-map {entry!r}: use NAME:field=column,..., e.g. numina:question=problem")
        result.setdefault(name, {}).update(_pairs(spec.split(","), "--column-map", "numina:question=problem"))
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"YAML/JSON options file (over ${ENV_CONFIG}'s); flags override both")
    p.add_argument(
        "--pool",
        action="append",
        metavar="NAME=URI",
        help="question pool (JSONL, Parquet, datasets folder, hf://), repeatable",
    )
    p.add_argument(
        "--column-map", action="append", metavar="NAME:field=col,...", help="map a pool's columns to record fields"
    )
    p.add_argument(
        "--decontaminate",
        action="append",
        metavar="[NAME=]URI",
        help="benchmark file whose questions must not leak, repeatable",
    )
    p.add_argument(
        "--benchmark-question-column", help="question column of the benchmark files (default: question/problem/...)"
    )
    p.add_argument("--ngram", type=int, help="decontamination n-gram size in words (default 8)")
    p.add_argument(
        "--disable-rule",
        action="append",
        metavar="RULE",
        help="switch off a quality rule (teacher_failed, missing_thinking, missing_attempt, asy, image, numbering, bold_digits)",
    )
    p.add_argument(
        "--extra-rule", action="append", metavar="NAME=REGEX", help="drop questions matching REGEX, repeatable"
    )
    t = p.add_argument_group(
        "distillation", "a teacher model writes the traces the pools lack (s1: Gemini; s1K-1.1: R1)"
    )
    t.add_argument(
        "--teacher", metavar="URL@MODEL", help="OpenAI-compatible teacher; its thinking and attempt become the trace"
    )
    t.add_argument(
        "--teacher-api-key-env",
        metavar="VAR",
        help="environment variable holding the teacher's API key (default THINKUBE_TEACHER_API_KEY)",
    )
    t.add_argument(
        "--regenerate-traces",
        action="store_true",
        default=None,
        help="ask the teacher for every row, replacing existing traces (as s1K-1.1 did)",
    )
    t.add_argument("--teacher-max-tokens", type=int, help="completion cap per teacher call (default 32768)")
    t.add_argument("--teacher-temperature", type=float, help="sampling temperature of teacher calls (default 0)")
    t.add_argument("--teacher-concurrency", type=int, help="teacher calls in flight (default 8)")
    t.add_argument("--teacher-rpm", type=float, help="requests per minute at most")
    t.add_argument("--teacher-tpm", type=float, help="tokens per minute at most (prompt and completion)")
    t.add_argument("--teacher-timeout", type=int, help="seconds per teacher call (default 1800)")
    t.add_argument(
        "--teacher-token-budget",
        type=int,
        help="tokens the run may spend on teacher calls in all; "
        "rows left then fail, and a rerun with a larger budget goes on",
    )
    t.add_argument(
        "--grade-teacher-with-judge",
        action="store_true",
        default=None,
        help="grade the teacher's attempts with --judge instead of the offline grader",
    )
    p.add_argument("--teacher-grade-column", help="column of the teacher's grade that auto-include reads")
    p.add_argument(
        "--base-model",
        action="append",
        metavar="URL@MODEL",
        help="OpenAI-compatible base model; questions it solves are dropped, repeatable",
    )
    p.add_argument("--judge", metavar="URL@MODEL", help="OpenAI-compatible chat model classifying MSC domains")
    p.add_argument(
        "--grade-with-judge", action="store_true", default=None, help="also grade base-model answers with --judge"
    )
    p.add_argument(
        "--answer-kind", action="append", metavar="NAME=KIND", help="answer kind of a pool: integer, math or choice"
    )
    p.add_argument("--domain-column", help="take domains from this column instead of classifying")
    p.add_argument(
        "--tokenizer", help="tokenizer for trace length: 'tiny', a folder or hf://id (default: whitespace words)"
    )
    p.add_argument("--target-size", type=int, help="rows to select (default 1000)")
    p.add_argument("--seed", type=int, help="seed of the selection draw and of base-model calls (default 0)")
    p.add_argument(
        "--allow-smaller",
        action="store_true",
        default=None,
        help="keep every remaining row when fewer than --target-size",
    )
    p.add_argument("--max-tokens", type=int, help="completion cap of each base-model call (default 1024)")
    p.add_argument("--concurrency", type=int, help="model calls in flight (default 8)")
    p.add_argument("--max-retries", type=int, help="retries per call on connection errors and 429/5xx (default 5)")
    p.add_argument("--out", help="output folder (path or pvc://); rerunning with the same folder resumes")


def resolve_config(args: argparse.Namespace) -> CurateConfig:
    """Command line over --config file over $THINKUBE_CONFIG file over CurateConfig defaults."""
    flags = {
        "pools": _pairs(args.pool or [], "--pool", "numina=/data/numina.parquet"),
        "column_maps": _column_maps(args.column_map or []),
        "decontaminate": _benchmarks(args.decontaminate or []),
        "extra_rules": _pairs(args.extra_rule or [], "--extra-rule", r"tables=\\begin\{tabular\}"),
        "answer_kinds": _pairs(args.answer_kind or [], "--answer-kind", "aime=integer"),
        "base_models": args.base_model,
        "disable_rules": args.disable_rule,
        "teacher": {
            field: getattr(args, flag) for flag, field in TEACHER_FLAGS.items() if getattr(args, flag) is not None
        },
        **{key: getattr(args, key) for key in SCALARS},
    }
    return load(CurateConfig, {k: v for k, v in flags.items() if v not in (None, {}, [])}, args.config)


def run(args: argparse.Namespace) -> int:
    from thinkube.workloads.curation.pipeline import run as run_pipeline
    from thinkube.workloads.llm.reply import LLMError

    try:
        cfg = resolve_config(args)
    except ValueError as e:  # BadConfig, or a flag written wrong
        print(f"thinkube curate: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        data = run_pipeline(cfg)
    except LLMError as e:
        print(
            f"thinkube curate: {e}\nfinished stages and calls are kept in {cfg.out}; rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (ValueError, FileNotFoundError) as e:  # PoolError, SelectionError, bad benchmark files
        print(f"thinkube curate: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except KeyboardInterrupt:
        print(f"thinkube curate: interrupted; rerun the same command to resume from {cfg.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    log.info("selected %d rows into %s (report.md, report.json, domains.png)", data["selected"], cfg.out)
    return 0
