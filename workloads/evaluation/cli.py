"""`thinkube eval`: sweep a target over benchmarks and thinking budgets, then report.

Every option can also come from a YAML/JSON file (`--config`, and $THINKUBE_CONFIG in pods),
keyed by the field names of EvalConfig (thinkube.api.stages.evaluate): `max_thinking_tokens:
[512, 1024]`, `benchmarks: {aime24: /data/aime24.jsonl}`; the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from thinkube.api.stages.evaluate import GRADE_TIMEOUT_S, EvalConfig, named_paths
from thinkube.api.stages.loader import load
from thinkube.constants import ENV_CONFIG, EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED
from thinkube.workloads.evaluation.benchmarks import KNOWN
from thinkube.workloads.formats.chat import CHAT_FORMATS

log = logging.getLogger(__name__)

API_KEY_ENV = "OPENAI_API_KEY"  # the usual variable of OpenAI-compatible clients


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", help=f"YAML/JSON file with any of these options (over ${ENV_CONFIG}'s); flags override both"
    )
    p.add_argument("--target", help="http(s):// URL of `thinkube serve` or any OpenAI-compatible server")
    p.add_argument("--model", help="model name to request (default: the server's first model)")
    p.add_argument(
        "--benchmark",
        action="append",
        dest="benchmarks",
        metavar="NAME=PATH",
        help=f"benchmark file, repeatable; known names: {', '.join(KNOWN)}",
    )
    p.add_argument("--out", help="output folder (path or pvc://): records, results.json, results.md, plot")
    p.add_argument("--max-thinking-tokens", metavar="N,N,...", help="budget-forcing maxima to sweep")
    p.add_argument("--num-ignore", metavar="K,K,...", help="extension counts to sweep (0 = baseline)")
    p.add_argument("--combine", action="store_true", default=None, help="also sweep every (maximum, num_ignore) pair")
    p.add_argument("--ignore-string", help="extension string (server default: Wait)")
    p.add_argument("--final-answer-prefix", help="appended when thinking is cut (server default: 'Final Answer:')")
    p.add_argument("--samples", type=int, help="samples per question (default 1; majority vote when more)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 0: greedy)")
    p.add_argument("--seed", type=int, help="base seed for sampling and the GPQA option shuffle (default 0)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default 8)")
    p.add_argument("--max-tokens", type=int, help="completion cap per request (default: the server's)")
    p.add_argument("--limit", type=int, help="first N questions of each benchmark (smoke runs)")
    p.add_argument(
        "--chat-format",
        choices=tuple(CHAT_FORMATS),
        help="split thinking from content for servers that return no reasoning_content",
    )
    p.add_argument("--judge-url", help="optional LLM judge (OpenAI-compatible); off by default")
    p.add_argument("--judge-model", help="model name for the judge")
    p.add_argument("--grade-timeout", type=float, help=f"seconds per symbolic comparison (default {GRADE_TIMEOUT_S:g})")
    p.add_argument("--no-progress", action="store_true", default=None, help="no progress bar")
    p.add_argument("--report-only", action="store_true", default=None, help="rebuild the reports from --out's records")


def resolve_options(args: argparse.Namespace) -> EvalConfig:
    """Command line over --config file over $THINKUBE_CONFIG file over EvalConfig defaults."""
    flags = {name: getattr(args, name, None) for name in EvalConfig.model_fields}
    flags["benchmarks"] = named_paths(args.benchmarks) if args.benchmarks else None
    flags["progress"] = False if args.no_progress else None
    return load(EvalConfig, flags, args.config)


async def _sweep(o: EvalConfig, out: Path) -> None:
    from thinkube.workloads.evaluation.benchmarks import load_benchmark
    from thinkube.workloads.evaluation.settings import budget_grid
    from thinkube.workloads.evaluation.sweep import Sweep, SweepConfig
    from thinkube.workloads.evaluation.targets import make_target
    from thinkube.workloads.grading.judge import LLMJudge

    benchmarks = [load_benchmark(name, uri, seed=o.seed, limit=o.limit) for name, uri in o.benchmarks.items()]
    settings = budget_grid(
        o.max_thinking_tokens,
        o.num_ignore,
        combine=o.combine,
        ignore_string=o.ignore_string,
        final_answer_prefix=o.final_answer_prefix,
    )
    cfg = SweepConfig(
        n=o.samples,
        temperature=o.temperature,
        seed=o.seed,
        concurrency=o.concurrency,
        max_tokens=o.max_tokens,
        grade_timeout_s=o.grade_timeout,
    )
    assert o.target is not None  # EvalConfig requires it unless report_only, which never sweeps
    target = make_target(
        o.target,
        model=o.model,
        api_key=os.environ.get(API_KEY_ENV),
        chat_format=CHAT_FORMATS[o.chat_format] if o.chat_format else None,
    )
    # EvalConfig requires judge_model with judge_url.
    judge = (
        LLMJudge(o.judge_url, o.judge_model, api_key=os.environ.get(API_KEY_ENV))
        if o.judge_url and o.judge_model
        else None
    )
    try:
        await Sweep(target, benchmarks, settings, cfg, out, judge=judge, progress=o.progress).run()
    finally:
        await target.aclose()
        if judge is not None:
            await judge.aclose()


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `thinkube --help` imports every command's module.
    from thinkube.workloads.evaluation.report import PLOT_PNG, RESULTS_MD, write_reports
    from thinkube.workloads.llm.reply import LLMError
    from thinkube.workloads.uris import local_path

    try:
        o = resolve_options(args)
        out = local_path(o.out)
    except ValueError as e:  # BadConfig, or an output URI written wrong
        print(f"thinkube eval: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if not o.report_only:
        try:
            asyncio.run(_sweep(o, out))
        except ValueError as e:  # BenchmarkError, SweepConflict, bad settings: all raised before any request
            print(f"thinkube eval: {e}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        except LLMError as e:
            print(
                f"thinkube eval: {e}\nrecords so far are kept in {out}; rerun the same command to resume",
                file=sys.stderr,
            )
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(
                f"thinkube eval: interrupted; records kept in {out}; rerun the same command to resume", file=sys.stderr
            )
            return EXIT_INTERRUPTED
    if not out.is_dir():
        print(f"thinkube eval: {out} holds no sweep to report on", file=sys.stderr)
        return EXIT_BAD_CONFIG
    results = write_reports(out)
    print((out / RESULTS_MD).read_text())
    if (out / PLOT_PNG).exists():
        log.info("plot: %s", out / PLOT_PNG)
    log.info("%d benchmark(s) reported in %s", len(results["benchmarks"]), out)
    return 0
