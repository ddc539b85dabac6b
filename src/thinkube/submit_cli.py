"""`thinkube submit -f run.yaml`: create resources through the control plane.

Every document is checked with its kind's model first; nothing is sent unless all pass.
"""

from __future__ import annotations

import argparse

from thinkube.client_cli import (
    DEFAULT_NAMESPACE,
    UsageError,
    add_connection_arguments,
    connect,
    handles_errors,
    load_manifests,
    ref,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="YAML or JSON resources (- for stdin)")
    p.add_argument("--dry-run", action="store_true", help="let the server check and default them, create nothing")
    add_connection_arguments(p, "create them here (default: each one's metadata.namespace, else default)")


def _namespace(doc: dict, given: str | None, index: int) -> str:
    own = (doc.get("metadata") or {}).get("namespace")
    if given and own and own != given:
        raise UsageError(f"document {index} is in namespace {own!r}, not the -n namespace {given!r}")
    return given or own or DEFAULT_NAMESPACE


@handles_errors("submit")
def run(args: argparse.Namespace) -> int:
    from thinkube.client import InvalidResource, check

    docs = load_manifests(args.filename)
    checked = []
    for i, doc in enumerate(docs, 1):
        try:
            kind, body = check(doc)
        except InvalidResource as e:
            what = e.what if len(docs) == 1 else f"{args.filename} document {i} ({e.what})"
            raise InvalidResource(what, e.problems) from None
        checked.append((kind, body, _namespace(doc, args.namespace, i)))
    with connect(args) as client:
        for kind, body, ns in checked:
            created = client.create(body, ns, dry_run=args.dry_run)
            name = created.get("metadata", {}).get("name") or body["metadata"].get("name")
            print(f"created {ref(kind, name)}{' (dry run)' if args.dry_run else ''}", flush=True)
    return 0
