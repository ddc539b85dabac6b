"""`thinkube api`: run the control plane."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from thinkube.api.server.settings import ApiSettings
from thinkube.constants import EXIT_BAD_CONFIG

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ApiSettings()  # one place for the defaults: the settings the flags fill in
    p.add_argument("--host", default=d.host, help="address to listen on (0.0.0.0 in a pod)")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument(
        "--audience", default=d.audience, help="audience of the projected tokens trainers report progress with"
    )
    p.add_argument(
        "--review-cache-seconds",
        type=float,
        default=d.review_cache_seconds,
        help="how long a TokenReview or SubjectAccessReview answer is reused (0: review every request)",
    )
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="larger request bodies get 413")
    p.add_argument("--log-format", choices=("json", "text"), default=d.log_format)
    p.add_argument(
        "--pvc-root",
        type=Path,
        default=d.pvc_root,
        help="where PVCs are mounted (results are read from <root>/<claim>/...)",
    )
    p.add_argument(
        "--namespace",
        default=IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else None,
        help="the namespace whose PVCs are mounted; results of runs elsewhere are refused (default: the pod's)",
    )
    p.add_argument(
        "--secure-cookie",
        dest="cookie_secure",
        action="store_true",
        help="behind TLS: the sign-in cookie is sent over HTTPS only",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from thinkube.api.server.app import create_app
    from thinkube.api.server.kube import load_connection
    from thinkube.api.server.observability import configure_logging

    settings = ApiSettings(**{f.name: getattr(args, f.name) for f in fields(ApiSettings)})
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
