"""The operator against the real API server, running as the chart's ServiceAccount.

One operator (`python -m thinkube.cli operator --namespace NS`) serves the whole module, so
its RBAC is the chart's least-privilege Role: anything it forgets fails here. There is no
kubelet, so Job and Deployment progress is simulated through their status subresources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import control_plane
from tests.support.paths import CHART
from tests.support.wait import wait_for
from thinkube.constants import FINALIZER
from thinkube.operator.kube import Kube
from thinkube.workloads.serving.process import free_port

PLURALS = ("curationjobs", "sftruns", "budgetforcedservers", "evalsweeps")


class Operator:
    """`thinkube operator` in a subprocess, with its own kubeconfig and ports (benchmarks/operator.py uses it too).

    resync_seconds: 1 keeps the tests quick; with hundreds of resources it would be mostly timer load.
    """

    def __init__(self, kubeconfig: Path, namespace: str, log: Path, resync_seconds: float = 1):
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.resync_seconds = resync_seconds
        self.health_port, self.metrics_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "thinkube.cli",
            "operator",
            "--namespace",
            self.namespace,
            "--image",
            "thinkube:test",
            "--resync-seconds",
            f"{self.resync_seconds:g}",
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.get("/healthz") is not None or self.proc.poll() is not None, "the operator's /healthz")
        assert self.proc.poll() is None, f"operator exited:\n{self.log.read_text()[-3000:]}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def get(self, path: str, port: int | None = None) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.health_port}{path}", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    def reconciles(self) -> tuple[int, int]:
        """(reconciles, errors) since this process started, from its own /metrics."""
        total = errors = 0.0
        for line in (self.get("/metrics", self.metrics_port) or "").splitlines():
            if line.startswith("thinkube_operator_reconciles_total{"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith("thinkube_operator_reconcile_errors_total{"):
                errors += float(line.rsplit(" ", 1)[1])
        return int(total), int(errors)


def service_account_kubeconfig(cluster, namespace: str, account: str, path: Path) -> Path:
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    return control_plane.service_account_kubeconfig(cluster.kubeconfig, token, account, path)


@pytest.fixture(scope="module")
def op(cluster, tmp_path_factory):
    ns = f"tk-operator-{uuid.uuid4().hex[:6]}"
    tmp = tmp_path_factory.mktemp("operator")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.thinkube.dev" for p in PLURALS))
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "thinkube.dev/test=true")
    rendered = cluster.helm(
        "template", ns, str(CHART), "-n", ns, "--skip-crds", "--set", f"operator.watchNamespaces={{{ns}}}"
    )
    assert rendered.returncode == 0, rendered.stderr
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=rendered.stdout)
    kubeconfig = service_account_kubeconfig(cluster, ns, f"{ns}-thinkube", tmp / "kubeconfig")
    operator = Operator(kubeconfig, ns, tmp / "operator.log")
    operator.start()
    yield operator
    # Resources carry the operator's finalizer: delete them while it still runs.
    cluster.kubectl("delete", "thinkube", "--all", "-n", ns, "--timeout=30s", check=False)
    operator.stop()
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    for role in (f"{ns}-thinkube-discovery", f"{ns}-thinkube-api"):
        cluster.kubectl("delete", "clusterrole,clusterrolebinding", role, check=False)


@pytest.fixture(scope="module")
def kube(cluster) -> Kube:
    return Kube(cluster.api_client())


def manifest(kind: str, name: str, spec: str) -> str:
    return f"---\napiVersion: thinkube.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def create(cluster, op, kind: str, name: str, spec: str) -> None:
    cluster.kubectl("apply", "-n", op.namespace, "-f", "-", input=manifest(kind, name, spec))


def patch_spec(cluster, op, kind: str, name: str, spec: dict) -> None:
    cluster.kubectl("patch", kind.lower(), name, "-n", op.namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def resource(kube, op, kind: str, name: str) -> dict:
    return kube.get("thinkube.dev/v1alpha1", kind, op.namespace, name) or {}


def wait_phase(kube, op, kind: str, name: str, phase: str) -> dict:
    return wait_for(
        lambda: (lambda r: r if r.get("status", {}).get("phase") == phase else None)(resource(kube, op, kind, name)),
        f"{kind} {name} to be {phase} (log: {op.log})",
    )


def child(kube, op, api_version: str, kind: str, name: str, check=lambda obj: True) -> dict:
    return wait_for(
        lambda: (lambda o: o if o and check(o) else None)(kube.get(api_version, kind, op.namespace, name)),
        f"{kind} {name}",
    )


def condition(res: dict, type_: str) -> tuple[str, str] | None:
    c = next((c for c in res.get("status", {}).get("conditions", []) if c["type"] == type_), None)
    return c and (c["status"], c["reason"])


def events(cluster, op, name: str) -> set[str]:
    items = cluster.kubectl_json("get", "events", "-n", op.namespace, "--field-selector", f"involvedObject.name={name}")
    return {e["reason"] for e in items["items"]}


def finish_job(kube, op, name: str, ok: bool = True, indexes: str | None = None) -> None:
    """What the Job controller writes when the pods end (1.36 checks these fields)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    job = kube.get("batch/v1", "Job", op.namespace, name)
    first, last = ("SuccessCriteriaMet", "Complete") if ok else ("FailureTarget", "Failed")
    status = {
        "conditions": [
            {"type": t, "status": "True", "reason": "Test", "message": "simulated", "lastTransitionTime": now}
            for t in (first, last)
        ],
        "active": 0,
        "ready": 0,
        "startTime": job["status"].get("startTime", now),
    }
    if ok:
        status |= {"completionTime": now, "succeeded": job["spec"].get("completions", 1)}
        if indexes:
            status["completedIndexes"] = indexes
    else:
        status["failed"] = 1
    kube.patch_status("batch/v1", "Job", op.namespace, name, status)


def mark_pod_ready(cluster, op, name: str) -> None:
    """No kubelet: mark one of a resource's pods ready the way a kubelet would."""
    pod = wait_for(
        lambda: cluster.kubectl_json("get", "pods", "-n", op.namespace, "-l", f"thinkube.dev/name={name}")["items"],
        f"{name}'s pods",
    )[0]["metadata"]["name"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cluster.kubectl(
        "patch",
        "pod",
        pod,
        "-n",
        op.namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                }
            }
        ),
    )


def owned_by(obj: dict, res: dict) -> bool:
    ref = obj["metadata"]["ownerReferences"][0]
    return (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        res["kind"],
        res["metadata"]["name"],
        res["metadata"]["uid"],
        True,
    )


CURATE = "{pools: {p: 'pvc://data/pool.jsonl'}, domainColumn: domain, outputUri: 'pvc://art/cj/%s'}"
SFT = "{baseModel: tiny, dataset: {uri: 'pvc://data/x.jsonl'}, outputUri: 'pvc://art/sft'}"


def test_curation_job_runs_its_job_and_succeeds(cluster, op, kube):
    create(cluster, op, "CurationJob", "cj", CURATE % "cj")
    job = child(kube, op, "batch/v1", "Job", "cj-curate")
    res = resource(kube, op, "CurationJob", "cj")
    assert owned_by(job, res) and owned_by(kube.get("v1", "ConfigMap", op.namespace, "cj-curate"), res)
    labels = job["metadata"]["labels"]
    assert (labels["thinkube.dev/kind"], labels["thinkube.dev/name"], labels["thinkube.dev/role"]) == (
        "CurationJob",
        "cj",
        "curate",
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["thinkube", "curate"]
    assert res["metadata"]["finalizers"] == [FINALIZER]
    wait_phase(kube, op, "CurationJob", "cj", "Running")
    finish_job(kube, op, "cj-curate")
    done = wait_phase(kube, op, "CurationJob", "cj", "Succeeded")
    assert condition(done, "Complete") == ("True", "Completed") and done["status"]["outputUri"] == "pvc://art/cj/cj"
    assert {"Running", "Completed"} <= wait_for(
        lambda: events(cluster, op, "cj") >= {"Running", "Completed"} and events(cluster, op, "cj"), "events"
    )


def test_sftrun_waits_for_its_curation_job_then_runs_an_indexed_job(cluster, op, kube):
    create(
        cluster, op, "SFTRun", "run", "{baseModel: tiny, dataset: {fromCurationJob: cj2}, outputUri: 'pvc://art/run'}"
    )
    waiting = wait_phase(kube, op, "SFTRun", "run", "Pending")
    assert condition(waiting, "WaitingForInput") == ("True", "ReferenceNotFound")
    create(cluster, op, "CurationJob", "cj2", CURATE % "cj2")
    wait_for(
        lambda: condition(resource(kube, op, "SFTRun", "run"), "WaitingForInput") == ("True", "InputNotReady"),
        "WaitingForInput/InputNotReady",
    )
    assert kube.get("batch/v1", "Job", op.namespace, "run-train") is None
    finish_job(kube, op, child(kube, op, "batch/v1", "Job", "cj2-curate")["metadata"]["name"])

    job = child(kube, op, "batch/v1", "Job", "run-train")
    service = child(kube, op, "v1", "Service", "run-train")
    run = resource(kube, op, "SFTRun", "run")
    assert owned_by(job, run) and owned_by(service, run)
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == ("Indexed", 2, 2)
    assert (service["spec"]["clusterIP"], service["spec"]["publishNotReadyAddresses"]) == ("None", True)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "run-train-0.run-train"
    running = wait_phase(kube, op, "SFTRun", "run", "Running")
    assert running["status"]["inputUri"] == "pvc://art/cj/cj2/selected.jsonl"
    assert condition(running, "WaitingForInput") == ("False", "InputReady")


def test_deleted_children_come_back_once(cluster, op, kube):
    create(cluster, op, "SFTRun", "heal", SFT)
    job, service = child(kube, op, "batch/v1", "Job", "heal-train"), child(kube, op, "v1", "Service", "heal-train")
    cluster.kubectl("delete", "service", "heal-train", "-n", op.namespace)
    cluster.kubectl("delete", "job", "heal-train", "-n", op.namespace, "--cascade=background")
    child(kube, op, "v1", "Service", "heal-train", lambda s: s["metadata"]["uid"] != service["metadata"]["uid"])
    child(kube, op, "batch/v1", "Job", "heal-train", lambda j: j["metadata"]["uid"] != job["metadata"]["uid"])
    jobs = kube.list("batch/v1", "Job", op.namespace, {"thinkube.dev/name": "heal"})
    assert [j["metadata"]["name"] for j in jobs] == ["heal-train"]


def test_suspend_and_resume(cluster, op, kube):
    create(cluster, op, "SFTRun", "pause", SFT)
    wait_phase(kube, op, "SFTRun", "pause", "Running")
    patch_spec(cluster, op, "SFTRun", "pause", {"suspend": True})
    child(kube, op, "batch/v1", "Job", "pause-train", lambda j: j["spec"]["suspend"] is True)
    wait_phase(kube, op, "SFTRun", "pause", "Suspended")
    patch_spec(cluster, op, "SFTRun", "pause", {"suspend": False})
    child(kube, op, "batch/v1", "Job", "pause-train", lambda j: j["spec"]["suspend"] is False)
    wait_phase(kube, op, "SFTRun", "pause", "Running")


def test_a_failed_pod_restarts_the_whole_gang(cluster, op, kube):
    create(cluster, op, "SFTRun", "gang", SFT[:-1] + ", maxRestarts: 1}")
    child(kube, op, "batch/v1", "Job", "gang-train")
    finish_job(kube, op, "gang-train", ok=False)
    retry = child(kube, op, "batch/v1", "Job", "gang-train-r1")
    assert retry["metadata"]["labels"]["thinkube.dev/attempt"] == "1"
    wait_for(lambda: resource(kube, op, "SFTRun", "gang")["status"].get("restarts") == 1, "status.restarts == 1")
    assert "GangRestart" in events(cluster, op, "gang")
    finish_job(kube, op, "gang-train-r1", ok=False)
    failed = wait_phase(kube, op, "SFTRun", "gang", "Failed")
    assert condition(failed, "Failed") == ("True", "RestartBudgetExhausted")


def test_server_scales_and_becomes_ready_then_a_sweep_targets_it(cluster, op, kube):
    create(cluster, op, "BudgetForcedServer", "srv", "{model: {uri: tiny}, engine: transformers, gpus: 0}")
    deployment = child(kube, op, "apps/v1", "Deployment", "srv")
    service = child(kube, op, "v1", "Service", "srv")
    res = resource(kube, op, "BudgetForcedServer", "srv")
    assert owned_by(deployment, res) and owned_by(service, res)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == ["thinkube", "serve"]
    create(
        cluster,
        op,
        "EvalSweep",
        "sweep",
        "{target: {serverRef: srv}, benchmarks: [{name: a, uri: 'pvc://b/a'}, "
        "{name: b, uri: 'pvc://b/b'}], outputUri: 'pvc://art/evs'}",
    )
    cluster.kubectl("scale", "bfs", "srv", "-n", op.namespace, "--replicas=2")
    child(kube, op, "apps/v1", "Deployment", "srv", lambda d: d["spec"]["replicas"] == 2)
    assert condition(wait_phase(kube, op, "EvalSweep", "sweep", "Pending"), "WaitingForInput")[0] == "True"

    mark_pod_ready(cluster, op, "srv")
    ready = wait_phase(kube, op, "BudgetForcedServer", "srv", "Ready")
    assert ready["status"]["endpoint"] == f"http://srv.{op.namespace}.svc:8000" and ready["status"]["ready"] == "1/2"

    job = child(kube, op, "batch/v1", "Job", "sweep-eval")
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (2, 1)
    finish_job(kube, op, "sweep-eval", indexes="0-1")
    done = wait_phase(kube, op, "EvalSweep", "sweep", "Succeeded")
    assert done["status"]["results"] == {"benchmarks": 2, "succeeded": 2, "failed": 0}


def test_the_whole_chain_applied_at_once_advances_stage_by_stage(cluster, op, kube):
    stages = [
        ("CurationJob", "chain-cj", CURATE % "chain-cj"),
        ("SFTRun", "chain-sft", "{baseModel: tiny, dataset: {fromCurationJob: chain-cj}, outputUri: 'pvc://art/cs'}"),
        ("BudgetForcedServer", "chain-srv", "{model: {fromSFTRun: chain-sft}, engine: transformers, gpus: 0}"),
        (
            "EvalSweep",
            "chain-evs",
            "{target: {serverRef: chain-srv}, benchmarks: [{name: a, uri: 'pvc://b/a'}], outputUri: 'pvc://art/ce'}",
        ),
    ]
    cluster.kubectl("apply", "-n", op.namespace, "-f", "-", input="".join(manifest(*stage) for stage in stages))
    children = {
        "SFTRun": ("batch/v1", "Job", "chain-sft-train"),
        "BudgetForcedServer": ("apps/v1", "Deployment", "chain-srv"),
        "EvalSweep": ("batch/v1", "Job", "chain-evs-eval"),
    }

    def waits(kind: str, name: str) -> None:
        wait_for(
            lambda: condition(resource(kube, op, kind, name), "WaitingForInput") == ("True", "InputNotReady"),
            f"{kind} {name} waiting for its input",
        )
        assert resource(kube, op, kind, name)["status"]["phase"] == "Pending"
        assert kube.get(*children[kind][:2], op.namespace, children[kind][2]) is None

    def advances(kind: str, name: str, phase: str) -> dict:
        res = wait_for(
            lambda: (
                lambda r: (
                    r
                    if r.get("status", {}).get("phase") == phase
                    and condition(r, "WaitingForInput") == ("False", "InputReady")
                    else None
                )
            )(resource(kube, op, kind, name)),
            f"{kind} {name} to be {phase} with its input ready",
        )
        assert owned_by(child(kube, op, *children[kind]), res)
        return res

    child(kube, op, "batch/v1", "Job", "chain-cj-curate")
    for kind, name, _ in stages[1:]:
        waits(kind, name)

    finish_job(kube, op, "chain-cj-curate")
    sft = advances("SFTRun", "chain-sft", "Running")
    assert sft["status"]["inputUri"] == "pvc://art/cj/chain-cj/selected.jsonl"
    waits("BudgetForcedServer", "chain-srv")
    waits("EvalSweep", "chain-evs")

    finish_job(kube, op, "chain-sft-train", indexes="0-1")
    srv = advances("BudgetForcedServer", "chain-srv", "Pending")
    assert srv["status"]["inputUri"] == "pvc://art/cs/final"
    waits("EvalSweep", "chain-evs")

    mark_pod_ready(cluster, op, "chain-srv")
    evs = advances("EvalSweep", "chain-evs", "Running")
    assert evs["status"]["inputUri"] == f"http://chain-srv.{op.namespace}.svc:8000"


def test_impossible_specs_and_bad_references_are_conditions(cluster, op, kube):
    create(cluster, op, "CurationJob", "nowhere", "{pools: {p: 'pvc://data/pool.jsonl'}, domainColumn: d}")
    bad = wait_phase(kube, op, "CurationJob", "nowhere", "Failed")
    assert condition(bad, "Synced") == ("False", "InvalidSpec") and "spec.outputUri" in bad["status"]["message"]
    create(cluster, op, "BudgetForcedServer", "orphan", "{model: {fromSFTRun: missing}}")
    wait_for(
        lambda: (
            condition(resource(kube, op, "BudgetForcedServer", "orphan"), "WaitingForInput")
            == ("True", "ReferenceNotFound")
        ),
        "WaitingForInput/ReferenceNotFound",
    )
    assert kube.get("apps/v1", "Deployment", op.namespace, "orphan") is None
    assert op.proc.poll() is None


def test_deleting_a_resource_releases_it_and_collects_its_children(cluster, op, kube):
    create(cluster, op, "CurationJob", "gone", CURATE % "gone")
    child(kube, op, "batch/v1", "Job", "gone-curate")
    cluster.kubectl("delete", "cj.thinkube.dev", "gone", "-n", op.namespace, "--timeout=30s")
    wait_for(lambda: kube.get("batch/v1", "Job", op.namespace, "gone-curate") is None, "the garbage collector")
    wait_for(lambda: "Deleting" in events(cluster, op, "gone"), "the Deleting event")


def test_a_new_resource_is_reconciled_once_until_its_first_resync(cluster, op, kube, tmp_path):
    """The resync timer's first tick waits a period: creation is the create handler's alone."""
    ns = f"tk-operator-once-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "thinkube.dev/test=true")
    slow = Operator(cluster.kubeconfig, ns, tmp_path / "operator.log", resync_seconds=600)
    slow.start()
    try:
        create(cluster, slow, "CurationJob", "once", CURATE % "once")
        wait_for(lambda: resource(kube, slow, "CurationJob", "once").get("status", {}).get("phase"), "a status")
        time.sleep(2)  # a timer without initial_delay ticks at once
        assert slow.reconciles() == (1, 0)
    finally:
        cluster.kubectl("delete", "cj.thinkube.dev", "once", "-n", ns, "--timeout=30s", check=False)
        slow.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_a_restarted_operator_adopts_its_children(cluster, op, kube):
    create(cluster, op, "SFTRun", "steady", SFT)
    wait_phase(kube, op, "SFTRun", "steady", "Running")
    before = {o["metadata"]["uid"] for o in kube.list("batch/v1", "Job", op.namespace, {})}
    op.stop()
    op.start()
    time.sleep(3)  # a few resync periods
    assert {o["metadata"]["uid"] for o in kube.list("batch/v1", "Job", op.namespace, {})} == before
    assert resource(kube, op, "SFTRun", "steady")["status"]["phase"] == "Running"


def test_health_and_metrics_endpoints(op):
    assert op.get("/healthz") is not None
    metrics = op.get("/metrics", op.metrics_port)
    assert 'thinkube_operator_reconciles_total{kind="SFTRun"' in metrics
    assert "thinkube_operator_reconcile_seconds_bucket" in metrics
