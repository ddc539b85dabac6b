"""`thinkube runs`: the resources in a namespace, their phase and, for training, step and loss."""

from __future__ import annotations

import argparse
from typing import Any

from thinkube.client_cli import UsageError, add_connection_arguments, connect, handles_errors, namespace, table
from thinkube.figures import age, number, step

HEADERS = ("KIND", "NAME", "PHASE", "AGE")
TRAINING_HEADERS = ("STEP", "LOSS")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", metavar="KIND", help="only this kind (SFTRun, sftruns, sft, ...); default all four")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, e.g. team=math")
    add_connection_arguments(p)


def training_cells(obj: dict[str, Any]) -> tuple[str, str]:
    """STEP and LOSS of an SFTRun from status.progress, as the trainer last reported them; blank until then."""
    progress = (obj.get("status") or {}).get("progress")
    if not isinstance(progress, dict):
        return "", ""
    return step(progress), number(progress.get("loss"))


def rows(objects: list[dict[str, Any]], with_training: bool) -> list[list[str]]:
    out = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        row = [
            obj.get("kind", ""),
            meta.get("name", ""),
            (obj.get("status") or {}).get("phase") or "Pending",
            age(meta.get("creationTimestamp")),
        ]
        if with_training:
            row.extend(training_cells(obj) if obj.get("kind") == "SFTRun" else ("", ""))
        out.append(row)
    return out


@handles_errors("runs")
def run(args: argparse.Namespace) -> int:
    from thinkube.api.resources import KINDS, SFTRun
    from thinkube.client import resolve_kind

    try:
        kinds = (resolve_kind(args.kind),) if args.kind else KINDS
    except ValueError as e:
        raise UsageError(str(e)) from None
    with connect(args) as client:
        objects = [o for k in kinds for o in client.list(k.names.plural, namespace(args), args.selector)]
    if not objects:
        print(f"no resources in namespace {namespace(args)}")
        return 0
    with_training = SFTRun in kinds
    headers = HEADERS + TRAINING_HEADERS if with_training else HEADERS
    print(table(headers, rows(objects, with_training)))
    return 0
