"""`thinkube eval`: sweep a target over benchmarks and thinking budgets, then report.

Every option can also come from a YAML/JSON file (`--config`, or $THINKUBE_CONFIG in
pods), keyed by the option's long name with underscores (`max_thinking_tokens: [512, 1024]`,
`benchmarks: {aime24: /data/aime24.jsonl}`); options given on the command line win.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import yaml

from thinkube.constants import ENV_CONFIG, EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED
from thinkube.workloads.evaluation.benchmarks import KNOWN
from thinkube.workloads.evaluation.grade import DEFAULT_TIMEOUT_S
from thinkube.workloads.formats.chat import CHAT_FORMATS

log = logging.getLogger(__name__)

API_KEY_ENV = "OPENAI_API_KEY"  # the usual variable of OpenAI-compatible clients

# Option defaults live here, not in argparse, so "not given on the command line" (None)
# can fall back to the config file before the default applies.
DEFAULTS = {
    "target": None, "model": None, "benchmark": {}, "out": None,
    "max_thinking_tokens": [], "num_ignore": [], "combine": False, "ignore_string": None, "final_answer_prefix": None,
    "n": 1, "temperature": 0.0, "seed": 0, "concurrency": 8, "max_tokens": None, "limit": None, "chat_format": None,
    "judge_url": None, "judge_model": None, "grade_timeout": DEFAULT_TIMEOUT_S, "no_progress": False,
    "report_only": False,
}
_ALIASES = {"benchmarks": "benchmark"}


def _int_list(value) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [int(v) for v in value]
    try:
        return [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers such as 64,128,256, got {value!r}") from None


def int_list_arg(value: str) -> list[int]:
    try:
        return _int_list(value)
    except ValueError as e:  # argparse prints an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(e)) from None


def _benchmarks(value) -> dict[str, str]:
    """NAME=PATH strings (CLI, or a list in the config) or a mapping, to {name: uri}."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    result = {}
    for entry in value:
        name, sep, uri = str(entry).partition("=")
        if not sep or not name or not uri:
            raise ValueError(f"--benchmark {entry!r}: use NAME=PATH, e.g. aime24=/data/aime24.jsonl "
                             f"(known names: {', '.join(KNOWN)}; any other name reads a generic file)")
        result[name] = uri
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get(ENV_CONFIG),
                   help=f"YAML/JSON file with any of these options (default: ${ENV_CONFIG})")
    p.add_argument("--target", help="http(s):// URL of `thinkube serve` or any OpenAI-compatible server")
    p.add_argument("--model", help="model name to request (default: the server's first model)")
    p.add_argument("--benchmark", action="append", metavar="NAME=PATH",
                   help=f"benchmark file, repeatable; known names: {', '.join(KNOWN)}")
    p.add_argument("--out", help="output folder (path or pvc://): records, results.json, results.md, plot")
    p.add_argument("--max-thinking-tokens", type=int_list_arg, metavar="N,N,...", help="budget-forcing maxima to sweep")
    p.add_argument("--num-ignore", type=int_list_arg, metavar="K,K,...", help="extension counts to sweep (0 = baseline)")
    p.add_argument("--combine", action="store_true", default=None, help="also sweep every (maximum, num_ignore) pair")
    p.add_argument("--ignore-string", help="extension string (server default: Wait)")
    p.add_argument("--final-answer-prefix", help="appended when thinking is cut (server default: 'Final Answer:')")
    p.add_argument("--n", type=int, help="samples per question (default 1)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 0: greedy)")
    p.add_argument("--seed", type=int, help="base seed for sampling and the GPQA option shuffle (default 0)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default 8)")
    p.add_argument("--max-tokens", type=int, help="completion cap per request (default: the server's)")
    p.add_argument("--limit", type=int, help="first N questions of each benchmark (smoke runs)")
    p.add_argument("--chat-format", choices=tuple(CHAT_FORMATS),
                   help="split thinking from content for servers that return no reasoning_content")
    p.add_argument("--judge-url", help="optional LLM judge (OpenAI-compatible); off by default")
    p.add_argument("--judge-model", help="model name for the judge")
    p.add_argument("--grade-timeout", type=float, help=f"seconds per symbolic comparison (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--no-progress", action="store_true", default=None, help="no progress bar")
    p.add_argument("--report-only", action="store_true", default=None, help="rebuild the reports from --out's records")


def read_config_file(path: str | Path) -> dict:
    """A YAML or JSON mapping of option names to values (YAML is a superset of JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values")
    return loaded


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Command line over config file over defaults, validated."""
    from_file: dict = {}
    for key, value in (read_config_file(args.config) if args.config else {}).items():
        name = _ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in DEFAULTS:
            raise ValueError(f"--config {args.config}: unknown option {key!r}; known: {', '.join(sorted(DEFAULTS))}")
        from_file[name] = value
    opts = {}
    for name, default in DEFAULTS.items():
        given = getattr(args, name, None)
        opts[name] = given if given is not None else from_file.get(name, default)
    opts["benchmark"] = {**_benchmarks(from_file.get("benchmark", {})), **_benchmarks(args.benchmark or [])}
    opts["max_thinking_tokens"] = _int_list(opts["max_thinking_tokens"])
    opts["num_ignore"] = _int_list(opts["num_ignore"])
    if not opts["out"]:
        raise ValueError("--out is required: the folder for records and reports")
    if not opts["report_only"]:
        if not opts["target"]:
            raise ValueError("--target is required: a server URL such as http://127.0.0.1:8000")
        if not opts["benchmark"]:
            raise ValueError(f"give at least one --benchmark NAME=PATH (known names: {', '.join(KNOWN)})")
    if opts["chat_format"] is not None and opts["chat_format"] not in CHAT_FORMATS:
        raise ValueError(f"chat_format {opts['chat_format']!r}: use one of {', '.join(CHAT_FORMATS)}")
    if opts["judge_url"] and not opts["judge_model"]:
        raise ValueError("--judge-url needs --judge-model")
    return argparse.Namespace(**opts)


async def _sweep(o: argparse.Namespace, out: Path) -> None:
    from thinkube.workloads.evaluation.benchmarks import load_benchmark
    from thinkube.workloads.evaluation.judge import LLMJudge
    from thinkube.workloads.evaluation.settings import budget_grid
    from thinkube.workloads.evaluation.sweep import Sweep, SweepConfig
    from thinkube.workloads.evaluation.targets import make_target

    benchmarks = [load_benchmark(name, uri, seed=o.seed, limit=o.limit) for name, uri in o.benchmark.items()]
    settings = budget_grid(o.max_thinking_tokens, o.num_ignore, combine=o.combine, ignore_string=o.ignore_string,
                           final_answer_prefix=o.final_answer_prefix)
    cfg = SweepConfig(n=o.n, temperature=o.temperature, seed=o.seed, concurrency=o.concurrency,
                      max_tokens=o.max_tokens, grade_timeout_s=o.grade_timeout)
    target = make_target(o.target, model=o.model, api_key=os.environ.get(API_KEY_ENV),
                         chat_format=CHAT_FORMATS.get(o.chat_format))
    judge = LLMJudge(o.judge_url, o.judge_model, api_key=os.environ.get(API_KEY_ENV)) if o.judge_url else None
    try:
        await Sweep(target, benchmarks, settings, cfg, out, judge=judge, progress=not o.no_progress).run()
    finally:
        await target.aclose()
        if judge is not None:
            await judge.aclose()


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `thinkube --help` imports every command's module.
    from thinkube.workloads.evaluation.report import PLOT_PNG, RESULTS_MD, write_reports
    from thinkube.workloads.evaluation.targets import TargetError
    from thinkube.workloads.uris import local_path

    try:
        o = resolve_options(args)
        out = local_path(o.out)
    except ValueError as e:
        print(f"thinkube eval: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if not o.report_only:
        try:
            asyncio.run(_sweep(o, out))
        except ValueError as e:  # BenchmarkError, SweepConflict, bad settings: all raised before any request
            print(f"thinkube eval: {e}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        except TargetError as e:
            print(f"thinkube eval: {e}\nrecords so far are kept in {out}; rerun the same command to resume",
                  file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"thinkube eval: interrupted; records kept in {out}; rerun the same command to resume", file=sys.stderr)
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
