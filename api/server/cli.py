"""`thinkube api`: run the control plane."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from thinkube.constants import DEFAULT_PVC_ROOT, ENV_PVC_ROOT, EXIT_BAD_CONFIG, PROGRESS_AUDIENCE

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--audience", default=PROGRESS_AUDIENCE, help="audience of the projected tokens trainers report progress with"
    )
    p.add_argument(
        "--review-cache-seconds",
        type=float,
        default=10.0,
        help="how long a TokenReview or SubjectAccessReview answer is reused (0: review every request)",
    )
    p.add_argument("--max-body-bytes", type=int, default=1024 * 1024, help="larger request bodies get 413")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.add_argument(
        "--pvc-root",
        type=Path,
        default=Path(os.environ.get(ENV_PVC_ROOT, DEFAULT_PVC_ROOT)),
        help="where PVCs are mounted (results are read from <root>/<claim>/...)",
    )
    p.add_argument(
        "--namespace",
        default=IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else None,
        help="the namespace whose PVCs are mounted; results of runs elsewhere are refused (default: the pod's)",
    )
    p.add_argument(
        "--secure-cookie", action="store_true", help="behind TLS: the sign-in cookie is sent over HTTPS only"
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from thinkube.api.server.app import create_app
    from thinkube.api.server.kube import load_connection
    from thinkube.api.server.observability import configure_logging
    from thinkube.api.server.settings import ApiSettings

    settings = ApiSettings(
        host=args.host,
        port=args.port,
        audience=args.audience,
        review_cache_seconds=args.review_cache_seconds,
        max_body_bytes=args.max_body_bytes,
        log_format=args.log_format,
        pvc_root=args.pvc_root,
        namespace=args.namespace,
        cookie_secure=args.secure_cookie,
    )
    configure_logging(settings.log_format)
    try:
        connection = load_connection()
    except Exception as e:  # noqa: BLE001 - the loaders raise several kinds; all mean the same to a user
        print(f"thinkube api: no Kubernetes connection ({e}): run it in a pod or set KUBECONFIG", file=sys.stderr)
        return EXIT_BAD_CONFIG
    uvicorn.run(
        create_app(settings, connection), host=settings.host, port=settings.port, log_config=None, access_log=False
    )
    return 0
