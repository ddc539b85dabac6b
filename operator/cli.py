"""`thinkube operator`: run the kopf operator for the four Thinkube resources."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from thinkube.api.resources.common import GPU_RESOURCE
from thinkube.constants import DEFAULT_IMAGE, PROGRESS_AUDIENCE

if TYPE_CHECKING:
    from thinkube.operator.kinds import Defaults

log = logging.getLogger(__name__)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. nvidia.com/gpu.present=true")
    return key, value


def _toleration(text: str) -> dict:
    """KEY[=VALUE]:EFFECT, as `kubectl taint` writes taints."""
    taint, sep, effect = text.rpartition(":")
    if not sep or not taint:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY[=VALUE]:EFFECT, e.g. nvidia.com/gpu:NoSchedule")
    key, has_value, value = taint.partition("=")
    return (
        {"key": key, "operator": "Equal", "value": value, "effect": effect}
        if has_value
        else {"key": key, "operator": "Exists", "effect": effect}
    )


def _secret_key(text: str) -> tuple[str, str]:
    name, _, key = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SECRET[:KEY], e.g. hf-token:token")
    return name, key or "token"


def add_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; globs such as 'team-*' allowed)",
    )
    where.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    p.add_argument(
        "--image", default=DEFAULT_IMAGE, help=f"workload image when a resource sets none (default {DEFAULT_IMAGE})"
    )
    p.add_argument(
        "--artifacts-pvc",
        metavar="CLAIM",
        help="PVC for outputs that set no spec.outputUri (pvc://CLAIM/<plural>/<namespace>/<name>)",
    )
    p.add_argument(
        "--node-selector",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="default nodeSelector of workload pods (repeatable)",
    )
    p.add_argument(
        "--toleration",
        action="append",
        default=[],
        type=_toleration,
        metavar="KEY[=VALUE]:EFFECT",
        help="default toleration of workload pods (repeatable)",
    )
    p.add_argument(
        "--gpu-resource",
        default=GPU_RESOURCE,
        help=f"extended resource a GPU is, where a resource names none (default {GPU_RESOURCE})",
    )
    p.add_argument(
        "--gpu-node-selector",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="nodeSelector added to pods that request GPUs (repeatable)",
    )
    p.add_argument(
        "--gpu-toleration",
        action="append",
        default=[],
        type=_toleration,
        metavar="KEY[=VALUE]:EFFECT",
        help="toleration added to pods that request GPUs (repeatable)",
    )
    p.add_argument("--gpu-runtime-class", metavar="NAME", help="runtimeClassName of pods that request GPUs")
    p.add_argument(
        "--model-cache-pvc",
        metavar="CLAIM",
        help="PVC that server and training pods share for hf:// downloads (mounted as HF_HOME)",
    )
    p.add_argument(
        "--hf-token-secret",
        type=_secret_key,
        metavar="NAME[:KEY]",
        help="Secret with a Hugging Face token (HF_TOKEN in model pods); KEY defaults to 'token'",
    )
    p.add_argument(
        "--api-url",
        metavar="URL",
        help="the control plane's base URL (e.g. http://thinkube-api.thinkube:8080): SFTRun pods "
        "POST their training progress there, shown in status.progress; default: not reported",
    )
    p.add_argument(
        "--api-audience",
        default=PROGRESS_AUDIENCE,
        help="audience of the projected tokens SFTRun pods report progress with (the control plane's --audience)",
    )
    p.add_argument(
        "--resync-seconds",
        type=float,
        default=30.0,
        help="re-converge every resource this often: recreate deleted children, refresh status (default 30)",
    )
    p.add_argument("--watch-timeout-seconds", type=int, default=300, help="server-side watch timeout (default 300)")
    p.add_argument(
        "--health-port", type=int, default=8080, help="liveness endpoint :PORT/healthz; 0: off (default 8080)"
    )
    p.add_argument("--metrics-port", type=int, default=9090, help="Prometheus :PORT/metrics; 0: off (default 9090)")


def defaults(args: argparse.Namespace) -> Defaults:
    """What the flags say the operator fills in where a resource leaves it out."""
    from thinkube.operator.kinds import Defaults

    return Defaults(
        image=args.image,
        artifacts_pvc=args.artifacts_pvc,
        node_selector=dict(args.node_selector),
        tolerations=tuple(args.toleration),
        gpu_resource=args.gpu_resource,
        gpu_node_selector=dict(args.gpu_node_selector),
        gpu_tolerations=tuple(args.gpu_toleration),
        gpu_runtime_class=args.gpu_runtime_class,
        model_cache_pvc=args.model_cache_pvc,
        hf_token_secret=args.hf_token_secret,
        api_url=args.api_url,
        api_audience=args.api_audience,
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: `thinkube --help` must not need kopf or the Kubernetes client.
    import kopf

    from thinkube.operator.handlers import Operator, configure, register
    from thinkube.operator.kube import Kube, connect
    from thinkube.operator.metrics import Metrics

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # One INFO line per timer tick per object, one per liveness probe: noise unless -v.
        for name in ("kopf.objects", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
    op = Operator(Kube(connect()), defaults(args), Metrics(), args.resync_seconds)
    registry = kopf.OperatorRegistry()
    register(registry, op)
    settings = kopf.OperatorSettings()
    configure(settings, args.watch_timeout_seconds)
    op.metrics.start(args.metrics_port)
    log.info("watching %s; workload image %s", ", ".join(args.namespace) or "all namespaces", args.image)
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=True,
        namespaces=args.namespace,
        clusterwide=args.all_namespaces or not args.namespace,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
    )
    return 0
