"""`thinkube demo --on-cluster` against the real API server: the four manifests, the watch, the errors.

There is no kubelet, so the watch can only ever time out: what it must get right is applying
every stage, the operator starting the first one, and saying which resource waits and why.
The whole chain running in pods is tests/node's business.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.cluster.test_operator import PLURALS, Operator
from tests.support.demo import run_on_cluster
from tests.support.paths import CHART
from thinkube.api.resources import BY_KIND
from thinkube.constants import API_VERSION
from thinkube.operator.kube import Kube
from thinkube.workloads.demo.cluster import ClusterError, apply_and_watch, demo_resources
from thinkube.workloads.demo.config import DemoConfig
from thinkube.workloads.serving.process import free_port

POOL, BENCH, OUT = "pvc://demo-data/pool.jsonl", "pvc://demo-data/heldout.jsonl", "pvc://demo-art/run"
KINDS = ["CurationJob", "SFTRun", "BudgetForcedServer", "EvalSweep"]
KEYS = [
    "BudgetForcedServer/thinkube-demo-teacher",
    "BudgetForcedServer/thinkube-demo-base",
    *(f"{kind}/thinkube-demo" for kind in KINDS),
]


@pytest.fixture(scope="module")
def crds(cluster):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.thinkube.dev" for p in PLURALS))


@pytest.fixture
def operator(cluster, crds, namespace, tmp_path):
    # The admin kubeconfig: the operator's RBAC is test_operator's business, not the demo's.
    op = Operator(cluster.kubeconfig, namespace, tmp_path / "operator.log")
    op.start()
    yield op
    # The resources carry the operator's finalizer: delete them while it still runs.
    cluster.kubectl("delete", "thinkube", "--all", "-n", namespace, "--timeout=30s", check=False)
    op.stop()


def manifests(name: str = "thinkube-demo") -> list[dict]:
    return demo_resources(DemoConfig(), pool_uri=POOL, benchmark_uri=BENCH, output_prefix=OUT, name=name)


def test_the_demo_manifests_are_accepted_by_the_api_server(cluster, crds, namespace):
    resources = manifests()
    assert [f"{r['kind']}/{r['metadata']['name']}" for r in resources] == KEYS
    curate = resources[2]["spec"]
    assert curate["baseModels"] == ["thinkube-demo-base"]  # the untrained model, served
    assert curate["teacher"]["endpoint"] == "thinkube-demo-teacher"  # the synthetic teacher, served
    assert resources[0]["spec"]["engine"] == "demo-teacher"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(resources))
    for r in resources:
        name = r["metadata"]["name"]
        stored = cluster.kubectl_json("get", f"{r['kind'].lower()}.thinkube.dev", name, "-n", namespace)
        # The API server fills the CRD defaults, which are the models' own: read back, the spec is unchanged.
        model = BY_KIND[r["kind"]]
        assert model.model_validate(stored).spec == model.model_validate(r).spec, r["kind"]


def test_apply_and_watch_starts_curation_and_times_out_naming_what_waits(cluster, operator, namespace):
    lines: list[str] = []
    start = time.monotonic()
    summary = apply_and_watch(
        manifests(), kubeconfig=str(cluster.kubeconfig), namespace=namespace, timeout_s=20, log=lines.append
    )
    assert time.monotonic() - start < 40
    assert list(summary) == KEYS

    kube = Kube(cluster.api_client())
    assert kube.get("apps/v1", "Deployment", namespace, "thinkube-demo-base") is not None
    assert kube.get("apps/v1", "Deployment", namespace, "thinkube-demo-teacher") is not None
    # The curation waits for its teacher and base-model servers, which no node runs here.
    assert kube.get("batch/v1", "Job", namespace, "thinkube-demo-curate") is None
    for key in ("CurationJob/thinkube-demo", "SFTRun/thinkube-demo"):
        assert summary[key]["phase"] == "Pending"
        assert any(c["type"] == "WaitingForInput" and c["status"] == "True" for c in summary[key]["conditions"])
    assert (
        "spec.teacher.endpoint" in summary["CurationJob/thinkube-demo"]["message"]
        or "spec.baseModels[0]" in summary["CurationJob/thinkube-demo"]["message"]
    )
    report = "\n".join(lines)
    assert "timed out after 20 s; still waiting:" in report
    waiting = report.split("still waiting:", 1)[1]
    assert all(f"{key}: " in waiting for key in KEYS), report
    assert "WaitingForInput InputNotReady" in waiting, report
    assert "pod thinkube-demo-base-" in waiting, report  # why the base server does not become Ready


def test_an_unreachable_api_server_is_a_cluster_error_naming_it(tmp_path):
    port = free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "closed",
                "clusters": [{"name": "closed", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "closed", "context": {"cluster": "closed", "user": "u"}}],
            }
        )
    )
    with pytest.raises(ClusterError, match=f"cannot reach the Kubernetes API server at https://127.0.0.1:{port}"):
        apply_and_watch(manifests(), kubeconfig=str(kubeconfig), namespace="default", timeout_s=5)
    with pytest.raises(ClusterError, match="does not exist"):
        apply_and_watch(manifests(), kubeconfig=str(tmp_path / "missing"), namespace="default", timeout_s=5)


def test_without_a_kubeconfig_the_default_one_is_used_and_its_absence_named(tmp_path, monkeypatch):
    from thinkube.workloads.demo.cluster import connect

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClusterError, match="no usable kubeconfig"):
        connect(None)


def test_the_demo_command_on_cluster_writes_the_data_and_applies_the_chain(cluster, operator, namespace, tmp_path):
    out = tmp_path / "demo"
    run = run_on_cluster(cluster, namespace, out, image="thinkube:test", timeout_s=5)
    # No node runs the pod that copies the data into the claim: a clear error, before any resource.
    assert run.returncode == 1, run.stderr[-2000:]
    assert (out / "data" / "pool.jsonl").stat().st_size > 0 and (out / "data" / "heldout.jsonl").stat().st_size > 0
    assert "the pod that copies files for claim thinkube-demo" in run.stderr and "Unschedulable" in run.stderr
    assert cluster.kubectl("get", "pvc", "thinkube-demo", "-n", namespace, check=False).returncode == 0
    assert Kube(cluster.api_client()).get(API_VERSION, "CurationJob", namespace, "thinkube-demo") is None
    helpers = cluster.kubectl("get", "pods", "-n", namespace, "-l", "thinkube.dev/role=files", "-o", "name").stdout
    assert helpers.strip() == ""  # the helper pod is cleaned up
