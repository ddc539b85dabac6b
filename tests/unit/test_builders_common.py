"""Shared builder pieces and `settle`, the merge with fields others own."""

from __future__ import annotations

from thinkube.api.resources import SFTRun
from thinkube.operator.kinds import Defaults, settle
from thinkube.operator.kinds import common as c


def run(**spec) -> SFTRun:
    return SFTRun.model_validate(
        {
            "kind": "SFTRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
            "spec": {"baseModel": "tiny", "dataset": {"uri": "file:///d"}, **spec},
        }
    )


def test_owner_reference_makes_the_resource_the_controller():
    body = {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": "SFTRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
    }
    meta = c.metadata(body, "r-train", "train", {"extra": "1"})
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "thinkube.dev/v1alpha1",
            "kind": "SFTRun",
            "name": "r",
            "uid": "u",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"] == {
        "thinkube.dev/kind": "SFTRun",
        "thinkube.dev/name": "r",
        "thinkube.dev/role": "train",
        "extra": "1",
    }
    assert c.selector("SFTRun", "r", "train") == "thinkube.dev/kind=SFTRun,thinkube.dev/name=r,thinkube.dev/role=train"


def test_pvc_uris_become_one_volume_per_claim_at_the_pvc_root():
    volumes, mounts = c.pvc_volumes(["pvc://data/a", "pvc://data/b", "pvc://models/m", "hf://o/n", None])
    assert [v["persistentVolumeClaim"]["claimName"] for v in volumes] == ["data", "models"]
    assert [m["mountPath"] for m in mounts] == ["/mnt/thinkube/pvc/data", "/mnt/thinkube/pvc/models"]


def test_scheduling_and_image_come_from_the_resource_else_the_operator():
    d = Defaults(image="img:op", node_selector={"pool": "gpu"}, tolerations=({"key": "g", "operator": "Exists"},))
    assert c.scheduling(run().spec, d) == {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "g", "operator": "Exists"}],
    }
    own = run(image="img:mine", nodeSelector={"pool": "a100"}, tolerations=[{"key": "x", "operator": "Exists"}]).spec
    assert c.scheduling(own, d) == {
        "nodeSelector": {"pool": "a100"},
        "tolerations": [{"key": "x", "operator": "Exists"}],
    }
    assert (c.image(run().spec, d), c.image(own, d)) == ("img:op", "img:mine")


def test_gpus_are_added_to_the_resource_limits():
    spec = run(resources={"limits": {"memory": "64Gi"}, "requests": {"cpu": 4}}).spec
    assert c.container_resources(spec, "nvidia.com/gpu", 8) == {
        "limits": {"memory": "64Gi", "nvidia.com/gpu": 8},
        "requests": {"cpu": 4},
    }
    assert c.container_resources(run().spec, "nvidia.com/gpu", 0) == {}


def test_gpu_pods_get_the_gpu_scheduling_and_runtime_class_on_top_of_their_own():
    d = Defaults(
        image="i",
        node_selector={"pool": "ml"},
        gpu_node_selector={"nvidia.com/gpu.present": "true"},
        gpu_tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        gpu_runtime_class="nvidia",
    )
    assert c.scheduling(run().spec, d, gpus=0) == {"nodeSelector": {"pool": "ml"}}
    gpu = c.scheduling(run().spec, d, gpus=8)
    assert gpu["nodeSelector"] == {"pool": "ml", "nvidia.com/gpu.present": "true"}
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert gpu["runtimeClassName"] == "nvidia"


def test_model_pods_share_the_cache_pvc_and_read_the_token_from_a_secret():
    env, volumes, mounts = c.model_access(Defaults(image="i", model_cache_pvc="models", hf_token_secret=("hf", "tok")))
    assert volumes == [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "models"}}]
    assert mounts[0]["mountPath"] == "/var/cache/thinkube/huggingface"
    assert {"name": "HF_HOME", "value": "/var/cache/thinkube/huggingface"} in env
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "tok"}}} in env
    assert c.model_access(Defaults(image="i")) == ([], [], [])


def test_job_suspend_leaves_a_queued_job_to_kueue():
    assert c.job_suspend(run().spec) is False
    assert c.job_suspend(run(suspend=True).spec) is True
    assert c.job_suspend(run(suspend=True, queueName="q").spec) is True
    assert c.job_suspend(run(queueName="q").spec) is None


def job(suspend):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"suspend": suspend}}


def test_settle_creates_queued_jobs_suspended_and_then_keeps_what_kueue_set():
    assert settle(job(None), None)["spec"]["suspend"] is True
    assert settle(job(None), job(False))["spec"]["suspend"] is False
    assert settle(job(True), job(False))["spec"]["suspend"] is True  # the user's suspend wins


def deployment(replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": replicas}}


def test_settle_leaves_autoscaled_replicas_alone_but_wakes_from_zero():
    assert settle(deployment(None), None)["spec"]["replicas"] == 1
    assert settle(deployment(None), deployment(5))["spec"]["replicas"] == 5
    assert settle(deployment(None), deployment(0))["spec"]["replicas"] == 1
    assert settle(deployment(3), deployment(5))["spec"]["replicas"] == 3
    desired = deployment(None)
    settle(desired, deployment(5))
    assert desired["spec"]["replicas"] is None  # the input is not modified
