"""`thinkube <command>`: the CLI and the container entrypoints.

Commands register lazily (module path, not an import) so `thinkube --help` stays fast and
works in images that lack a stage's heavy dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    help: str
    module: str  # module with add_arguments(parser) and run(args) -> int


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "run the whole s1 pipeline locally on the built-in tiny model (CPU, minutes)", "thinkube.workloads.demo.cli"
    ),
    "curate": Command("select an s1K-style dataset from a question pool", "thinkube.workloads.curation.cli"),
    "train": Command("fine-tune a model on reasoning traces (torchrun, FSDP2)", "thinkube.workloads.training.cli"),
    "serve": Command("OpenAI-compatible server with budget forcing", "thinkube.workloads.serving.cli"),
    "eval": Command("evaluate a model over benchmarks and thinking budgets", "thinkube.workloads.evaluation.cli"),
    "operator": Command("run the Kubernetes operator (kopf)", "thinkube.operator.cli"),
    "api": Command("run the REST control plane (REST, dashboard, Kubernetes auth)", "thinkube.api.server.cli"),
    "submit": Command("create resources from YAML through the control plane", "thinkube.submit_cli"),
    "runs": Command("list resources with their phase (and training step and loss)", "thinkube.runs_cli"),
    "logs": Command("print or follow a resource's workload log", "thinkube.logs_cli"),
    "results": Command("show a finished resource's summary and download its files", "thinkube.results_cli"),
    "tiny-model": Command(
        "build the built-in tiny Qwen2 model and tokenizer (no download)", "thinkube.workloads.tiny_model_cli"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thinkube",
        description="Thinkube: curate, fine-tune, serve with budget forcing and evaluate s1-style reasoning models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        importlib.import_module(cmd.module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    cmd = COMMANDS[args.command]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # httpx logs every request at INFO: thousands of lines drown the commands' own progress.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    return int(importlib.import_module(cmd.module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
