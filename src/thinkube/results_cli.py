"""`thinkube results KIND/NAME`: a finished stage's summary and files, downloaded with --out."""

from __future__ import annotations

import argparse
from pathlib import Path

from thinkube.client_cli import (
    UsageError,
    add_connection_arguments,
    connect,
    handles_errors,
    namespace,
    parse_ref,
    ref,
    table,
)
from thinkube.figures import CURVE_COLUMNS, SETTING_COLUMNS, evaluation_tables, flatten


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="KIND/NAME", help="e.g. evalsweep/s1-32b-aime")
    p.add_argument("--out", type=Path, metavar="DIR", help="download every result file into DIR")
    add_connection_arguments(p)


def destination(out: Path, name: str) -> Path:
    """Where a result file goes inside `out`; a name that would leave it is refused."""
    dest = (out / name).resolve()
    if not dest.is_relative_to(out.resolve()):
        raise UsageError(f"the server named a result file {name!r}, which would land outside {out}")
    return dest


def print_summary(kind: str, summary: dict) -> None:
    """An EvalSweep's accuracy tables per benchmark; other kinds' figures as dotted keys."""
    tables = evaluation_tables(summary) if kind == "EvalSweep" else []
    for t in tables:
        print(f"\n{t['benchmark']} ({t['items']} items, n = {t['n']})")
        print(table(SETTING_COLUMNS, t["rows"]))
        if t["curves"]:
            print()
            print(table(CURVE_COLUMNS, t["curves"]))
    if summary and not tables:
        print()
        print(table(("KEY", "VALUE"), flatten(summary)))


@handles_errors("results")
def run(args: argparse.Namespace) -> int:
    kind, name = parse_ref(args.ref)
    with connect(args) as client:
        result = client.results(kind.names.plural, name, namespace(args))
        print(f"{ref(kind, name)}   {result.get('phase') or 'Pending'}   {result.get('outputUri') or ''}".rstrip())
        print_summary(kind.names.kind, result.get("summary") or {})
        files = result.get("files") or []
        if files:
            print()
            print(
                table(("FILE", "SIZE", "TYPE"), [(f["name"], f.get("size", ""), f.get("mediaType", "")) for f in files])
            )
        if args.out:
            for f in files:
                dest = destination(args.out, f["name"])
                size = client.save_result_file(kind.names.plural, name, f["name"], dest, namespace(args))
                print(f"saved {dest} ({size} bytes)")
    return 0
