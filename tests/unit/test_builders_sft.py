"""SFTRun -> ConfigMap + headless Service + Indexed Job of torchrun pods."""

from __future__ import annotations

import json
from dataclasses import replace

from tests.unit.test_builders_reconcile import SFT, FakeKube, resource
from tests.unit.test_builders_reconcile import D as WITH_ARTIFACTS
from thinkube.cli import build_parser
from thinkube.operator.cli import defaults
from thinkube.operator.kinds import Defaults, Resolved
from thinkube.operator.kinds.sft import build
from thinkube.operator.reconcile import reconcile
from thinkube.operator.report import status_patch

DEFAULTS = Defaults(image="img:1")


def body(**spec) -> dict:
    return {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": "SFTRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
        "spec": {"baseModel": "pvc://models/base", "dataset": {"fromCurationJob": "cj"}, **spec},
    }


def children(attempt=0, defaults=DEFAULTS, **spec):
    cm, svc, job = build(body(**spec), Resolved("pvc://data/cj/selected.jsonl", "pvc://out/r", attempt), defaults)
    return cm, svc, job


def test_indexed_job_one_pod_per_node_with_gpus():
    _, _, job = children()
    spec = job["spec"]
    assert (job["metadata"]["name"], spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "r-train",
        "Indexed",
        2,
        2,
    )
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 8}}
    assert pod["restartPolicy"] == "Never" and pod["subdomain"] == "r-train"
    assert job["metadata"]["labels"]["thinkube.dev/attempt"] == "0"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u"


def test_whole_gang_restart_budget_and_deadline():
    _, _, job = children(activeDeadlineSeconds=3600)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 3600
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}
    assert rules[1]["action"] == "Ignore"


def test_torchrun_env_points_every_rank_at_pod_zero():
    _, _, job = children(attempt=2, gpusPerNode=4, nodes=4, masterPort=23456)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MASTER_ADDR"] == "r-train-r2-0.r-train" and env["MASTER_PORT"] == "23456"
    assert (env["NNODES"], env["NPROC_PER_NODE"]) == ("4", "4")
    assert env["NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert env["THINKUBE_CONFIG"] == "/etc/thinkube/config.json"
    assert container["command"] == [
        "torchrun",
        "--nnodes=$(NNODES)",
        "--nproc-per-node=$(NPROC_PER_NODE)",
        "--node-rank=$(NODE_RANK)",
        "--master-addr=$(MASTER_ADDR)",
        "--master-port=$(MASTER_PORT)",
        "-m",
        "thinkube.cli",
        "train",
    ]


def test_gpu_ranks_repel_each_other_one_pod_per_node():
    _, _, job = children(attempt=1)
    template = job["spec"]["template"]
    (term,) = template["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"] == {"matchLabels": {"thinkube.dev/kind": "SFTRun", "thinkube.dev/name": "r"}}
    assert term["labelSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()


def test_cpu_run_has_one_process_per_pod_and_no_gpu_request():
    _, _, job = children(gpusPerNode=0)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {e["name"]: e.get("value") for e in container["env"]}["NPROC_PER_NODE"] == "1"
    assert container["resources"] == {}
    assert "affinity" not in pod  # CPU ranks may share a node


def test_headless_service_publishes_not_ready_pods():
    _, svc, _ = children()
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {
        "thinkube.dev/kind": "SFTRun",
        "thinkube.dev/name": "r",
        "thinkube.dev/role": "train",
    }


def test_volumes_shm_config_and_every_claim():
    _, _, job = children(shmSize="64Gi")
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["config"]["configMap"]["name"] == "r-train"
    assert sorted(
        v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v
    ) == ["data", "models", "out"]


def test_config_is_the_trainers_own_keys():
    cm, _, _ = children(training={"epochs": 3, "saveEvery": 10})
    cfg = json.loads(cm["data"]["config.json"])
    assert (cfg["model"], cfg["dataset"], cfg["output"]) == (
        "pvc://models/base",
        "pvc://data/cj/selected.jsonl",
        "pvc://out/r",
    )
    assert (cfg["epochs"], cfg["save_every"], cfg["learning_rate"]) == (3, 10, 1e-5)
    assert (cfg["fsdp"], cfg["lr_scheduler"], cfg["precision"]) == ("full_shard", "cosine", "auto")


def test_queue_label_and_suspend_left_to_kueue():
    _, _, job = children(queueName="gpu-queue")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["spec"]["suspend"] is None


def test_with_an_api_url_pods_get_the_progress_url_and_a_token_for_the_control_plane_only():
    _, _, job = children(defaults=replace(DEFAULTS, api_url="http://thinkube-api.thinkube:8080/"))
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["THINKUBE_PROGRESS_URL"] == "http://thinkube-api.thinkube:8080/v1/namespaces/ns/sftruns/r/progress"
    assert env["THINKUBE_PROGRESS_TOKEN_FILE"] == "/var/run/secrets/thinkube/progress/token"
    (volume,) = [v for v in pod["volumes"] if "projected" in v]
    assert volume["projected"] == {
        "sources": [{"serviceAccountToken": {"audience": "thinkube-api", "expirationSeconds": 3600, "path": "token"}}]
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/var/run/secrets/thinkube/progress", "readOnly": True}


def test_operator_api_url_and_audience_flags():
    args = ["operator", "--api-url", "http://api:8080", "--api-audience", "ours"]
    given = defaults(build_parser().parse_args(args))
    assert (given.api_url, given.api_audience) == ("http://api:8080", "ours")
    _, _, job = children(defaults=given)
    (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if "projected" in v]
    assert volume["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "ours"
    plain = defaults(build_parser().parse_args(["operator"]))
    assert (plain.api_url, plain.api_audience) == (None, "thinkube-api")


def test_without_an_api_url_nothing_about_progress_is_added():
    _, _, job = children()
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert not [e for e in container["env"] if e["name"].startswith("THINKUBE_PROGRESS")]
    assert not [v for v in pod["volumes"] if "projected" in v]
    assert not [m for m in container["volumeMounts"] if "progress" in m["mountPath"]]


PROGRESS = {"step": 3, "totalSteps": 6, "loss": 1.25, "updatedAt": "2026-01-01T00:00:30Z"}


def test_status_counts_pods_and_keeps_the_reported_progress():
    kube, spec = FakeKube(), {**SFT, "dataset": {"uri": "pvc://d/x.jsonl"}}
    status, _ = reconcile(resource("SFTRun", spec), kube, WITH_ARTIFACTS, "2026-01-01T00:00:00Z")
    kube.set_job("x-train", active=2, ready=1)
    old = {**status, "progress": PROGRESS}  # as the control plane patched it
    status, _ = reconcile(resource("SFTRun", spec, status=old), kube, WITH_ARTIFACTS, "2026-01-01T00:01:00Z")
    assert status["phase"] == "Running" and status["pods"] == "1/2 pods ready"
    assert status["progress"] == PROGRESS and "progress" not in status_patch(old, status)


def test_a_pod_count_left_in_progress_by_an_older_operator_is_replaced():
    kube, spec = FakeKube(), {**SFT, "dataset": {"uri": "pvc://d/x.jsonl"}}
    status, _ = reconcile(resource("SFTRun", spec), kube, WITH_ARTIFACTS, "2026-01-01T00:00:00Z")
    kube.set_job("x-train", active=2, ready=2)
    old = {**status, "progress": "2/2 pods ready"}
    status, _ = reconcile(resource("SFTRun", spec, status=old), kube, WITH_ARTIFACTS, "2026-01-01T00:01:00Z")
    assert status["pods"] == "2/2 pods ready" and "progress" not in status
    assert status_patch(old, status)["progress"] is None
