"""`thinkube api` in a subprocess against a real API server, as the chart's api ServiceAccount
(so the chart's RBAC is all it has), with a user allowed to use the Thinkube kinds in one
namespace (alice) and one with no rights (bob). Used by the control plane's cluster tests and
by benchmarks/api.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.paths import CHART
from thinkube.workloads.serving.process import free_port, wait_healthy

PLURALS = ("curationjobs", "sftruns", "budgetforcedservers", "evalsweeps")
CLAIM = "art"  # the artifacts claim the control plane finds under its PVC root


def user_role(account: str) -> str:
    """A Role (and its binding to `account`) for a researcher who runs the Thinkube kinds."""
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: thinkube-user}}
rules:
  - apiGroups: [thinkube.dev]
    resources: [curationjobs, sftruns, budgetforcedservers, evalsweeps]
    verbs: [get, list, watch, create, patch, delete]
  - apiGroups: [""]
    resources: [events, pods]
    verbs: [get, list]
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: thinkube-user}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: thinkube-user}}
subjects: [{{kind: ServiceAccount, name: {account}}}]
"""


Kubectl = Callable[..., str]  # kubectl(*args, input=None) -> stdout; raises when kubectl fails


def post_event(kubectl: Kubectl, obj: dict, reason: str, message: str, when: str) -> None:
    """An event about `obj` (a created resource), as the operator records one."""
    meta = obj["metadata"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}"},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": "Normal",
        "reason": reason,
        "message": message,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
        "source": {"component": "thinkube-operator"},
    }
    kubectl("create", "-n", meta["namespace"], "-f", "-", input=json.dumps(event))


@dataclass
class ControlPlane:
    url: str
    namespace: str
    token: str  # alice: may use the Thinkube kinds in `namespace`
    outsider_token: str  # bob: a valid token with no rights
    pvc_root: Path
    log_path: Path


def service_account_kubeconfig(kubeconfig: Path, token: str, account: str, path: Path) -> Path:
    """`kubeconfig`'s cluster, used with a ServiceAccount's token instead of its own user."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    cfg["users"] = [{"name": account, "user": {"token": token}}]
    for ctx in cfg["contexts"]:
        ctx["context"]["user"] = account
    path.write_text(json.dumps(cfg))
    return path


def prepare(kubectl: Kubectl, helm: Kubectl, ns: str) -> None:
    """CRDs, the namespace, the chart's api ServiceAccount and RBAC, and the two users."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.thinkube.dev" for p in PLURALS))
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "thinkube.dev/test=true")
    rendered = helm("template", ns, str(CHART), "-n", ns, "--skip-crds")
    kubectl("apply", "-n", ns, "-f", "-", input=rendered)
    for user in ("alice", "bob"):
        kubectl("create", "serviceaccount", user, "-n", ns)
    kubectl("apply", "-n", ns, "-f", "-", input=user_role("alice"))


def cleanup(kubectl: Kubectl, ns: str) -> None:
    for args in (
        ("delete", "namespace", ns, "--wait=false"),
        *(
            ("delete", "clusterrole,clusterrolebinding", f"{ns}-{s}")
            for s in ("thinkube", "thinkube-discovery", "thinkube-api")
        ),
    ):
        try:
            kubectl(*args)
        except subprocess.CalledProcessError:
            pass


@contextmanager
def running(
    kubectl: Kubectl, kubeconfig: Path, ns: str, tmp: Path, review_cache_seconds: float = 10
) -> Iterator[ControlPlane]:
    """The control plane for namespace `ns` (prepared), until the block ends."""
    token = kubectl("create", "token", "alice", "-n", ns, "--duration=1h").strip()
    outsider = kubectl("create", "token", "bob", "-n", ns, "--duration=1h").strip()
    own = kubectl("create", "token", f"{ns}-thinkube-api", "-n", ns, "--duration=1h").strip()
    sa_config = service_account_kubeconfig(kubeconfig, own, f"{ns}-thinkube-api", tmp / "api.kubeconfig")
    pvc_root = tmp / "pvc"
    (pvc_root / CLAIM).mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / f"api-{port}.log"
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "thinkube.cli", "api", "--port", str(port), "--pvc-root", str(pvc_root)]
            + ["--namespace", ns, "--review-cache-seconds", f"{review_cache_seconds:g}"],
            env={**os.environ, "KUBECONFIG": str(sa_config)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(url, 60, proc, log_path, path="/healthz")
        yield ControlPlane(url, ns, token, outsider, pvc_root, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
