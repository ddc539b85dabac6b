"""`thinkube results KIND/NAME`: a finished stage's summary and files, downloaded with --out."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thinkube.client_cli import (
    UsageError,
    add_connection_arguments,
    connect,
    handles_errors,
    namespace,
    number,
    parse_ref,
    ref,
    table,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="KIND/NAME", help="e.g. evalsweep/s1-32b-aime")
    p.add_argument("--out", type=Path, metavar="DIR", help="download every result file into DIR")
    add_connection_arguments(p)


def flatten(summary: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested summary figures as dotted keys: {"aime": {"accuracy": 0.5}} -> aime.accuracy 0.5."""
    out: list[tuple[str, str]] = []
    for key, value in summary.items():
        if isinstance(value, Mapping) and value:
            out.extend(flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", number(value)))
    return out


def destination(out: Path, name: str) -> Path:
    """Where a result file goes inside `out`; a name that would leave it is refused."""
    dest = (out / name).resolve()
    if not dest.is_relative_to(out.resolve()):
        raise UsageError(f"the server named a result file {name!r}, which would land outside {out}")
    return dest


@handles_errors("results")
def run(args: argparse.Namespace) -> int:
    kind, name = parse_ref(args.ref)
    with connect(args) as client:
        result = client.results(kind.names.plural, name, namespace(args))
        print(f"{ref(kind, name)}   {result.get('phase') or 'Pending'}   {result.get('outputUri') or ''}".rstrip())
        summary = flatten(result.get("summary") or {})
        if summary:
            print()
            print(table(("KEY", "VALUE"), summary))
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
