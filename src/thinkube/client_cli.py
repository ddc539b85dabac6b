"""What the control plane's commands (`thinkube submit|runs|logs|results`) share.

Connection options, KIND/NAME references, manifests, tables, and one mapping from errors to
messages and exit codes: 2 when the input is wrong (here or as the server judged it), 1 when
the server or the connection failed. The client module (and httpx) load only when a command runs,
so `thinkube --help` works where they are not installed.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from thinkube.constants import (
    ENV_API_TOKEN,
    ENV_API_TOKEN_FILE,
    ENV_API_URL,
    EXIT_BAD_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
)

if TYPE_CHECKING:
    from thinkube.api.resources.common import CustomResource
    from thinkube.client import Client

DEFAULT_NAMESPACE = "default"


class UsageError(Exception):
    """Input this command cannot use: exit 2 with the message."""


def add_connection_arguments(p: argparse.ArgumentParser, namespace_help: str = "the namespace (default: default)"):
    p.add_argument(
        "--api-url", metavar="URL", help=f"the control plane, e.g. http://localhost:8000 (default ${ENV_API_URL})"
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"file holding the Kubernetes token to present (default ${ENV_API_TOKEN_FILE}, or the token in ${ENV_API_TOKEN})",
    )
    p.add_argument("-n", "--namespace", metavar="NS", help=namespace_help)


def connect(args: argparse.Namespace, environ=os.environ) -> Client:
    from thinkube.client import Client

    url = args.api_url or environ.get(ENV_API_URL)
    if not url:
        raise UsageError(f"no control-plane URL: give --api-url or set {ENV_API_URL}")
    if args.token_file:
        return Client.from_token_file(url, args.token_file)
    if not (environ.get(ENV_API_TOKEN) or environ.get(ENV_API_TOKEN_FILE)):
        raise UsageError(f"no token: give --token-file or set {ENV_API_TOKEN_FILE} or {ENV_API_TOKEN}")
    return Client.from_env({**environ, ENV_API_URL: url})


def namespace(args: argparse.Namespace) -> str:
    return args.namespace or DEFAULT_NAMESPACE


def parse_ref(text: str) -> tuple[type[CustomResource], str]:
    """KIND/NAME, as kubectl writes it: sftrun/s1-32b, sft/s1-32b, SFTRun/s1-32b."""
    from thinkube.client import resolve_kind

    kind, sep, name = text.partition("/")
    if not sep or not kind or not name or "/" in name:
        raise UsageError(f"{text!r}: expected KIND/NAME, e.g. sftrun/s1-32b")
    try:
        return resolve_kind(kind), name
    except ValueError as e:
        raise UsageError(str(e)) from None


def ref(kind: type[CustomResource], name: str) -> str:
    return f"{kind.names.kind.lower()}/{name}"


def load_manifests(path: str, stdin=sys.stdin) -> list[dict[str, Any]]:
    """The documents of a (multi-document) YAML or JSON file, `-` for standard input; empty ones skipped."""
    try:
        text = stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML: {e}") from None
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: document {i} is a {type(doc).__name__}, not a resource (a mapping)")
    if not docs:
        raise UsageError(f"{path}: no resources in it")
    return docs


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart, no trailing blanks."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def fail(command: str, message: str, code: int) -> int:
    print(f"thinkube {command}: {message}", file=sys.stderr)
    return code


def handles_errors(
    command: str,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Turn the client's errors into one message on stderr and the exit code that says whose fault it was."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(run)
        def guarded(args: argparse.Namespace) -> int:
            from thinkube.client import ApiError, ClientError, InvalidResource, Unreachable

            try:
                return run(args)
            except UsageError as e:
                return fail(command, str(e), EXIT_BAD_CONFIG)
            except InvalidResource as e:
                lines = "\n".join(f"  {f}: {m}" if f else f"  {m}" for f, m in e.problems)
                return fail(command, f"{e.what} is not valid:\n{lines}", EXIT_BAD_CONFIG)
            except ApiError as e:
                where = f" (field {e.field})" if e.field and e.field not in e.detail else ""
                code = EXIT_BAD_CONFIG if e.status in (400, 422) else EXIT_FAILED
                return fail(command, f"{e.status} {e.title}: {e.detail}{where}", code)
            except Unreachable as e:
                return fail(command, str(e), EXIT_FAILED)
            except ClientError as e:  # the client's own set-up: no URL, no token
                return fail(command, str(e), EXIT_BAD_CONFIG)
            except KeyboardInterrupt:
                return EXIT_INTERRUPTED

        return guarded

    return wrap
