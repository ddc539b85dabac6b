"""`thinkube logs KIND/NAME`: a workload's log through the control plane."""

from __future__ import annotations

import argparse
import sys

from thinkube.client_cli import add_connection_arguments, connect, handles_errors, namespace, parse_ref


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="KIND/NAME", help="e.g. sftrun/s1-32b")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the workload ends")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("--rank", type=int, metavar="R", help="SFTRun: the pod of this node rank (default 0)")
    p.add_argument("-c", "--container", help="a container other than the workload's own")
    add_connection_arguments(p)


@handles_errors("logs")
def run(args: argparse.Namespace) -> int:
    kind, name = parse_ref(args.ref)
    with connect(args) as client:
        for line in client.logs(
            kind.names.plural,
            name,
            namespace(args),
            follow=args.follow,
            tail=args.tail,
            rank=args.rank,
            container=args.container,
        ):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()  # followed logs appear as they come
    return 0
