"""`thinkube tiny-model`: build (or locate) the built-in tiny model."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="rebuild even if cached")


def run(args: argparse.Namespace) -> int:
    from thinkube.workloads.tiny_model import ensure_tiny_model

    print(ensure_tiny_model(force=args.force))
    return 0
