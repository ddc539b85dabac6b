"""The reconcile loop over the builders, against an in-memory API: chaining, gang restarts,
status and conditions, and problems reported as conditions instead of exceptions."""

from __future__ import annotations

import copy

import pytest

from thinkube.operator.kinds import Defaults
from thinkube.operator.kube import ApiError
from thinkube.operator.observe import count_indexes
from thinkube.operator.reconcile import reconcile
from thinkube.operator.report import status_patch

D = Defaults(image="img:1", artifacts_pvc="art")
NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


class FakeKube:
    """Objects by (kind, namespace, name); apply stores what it is given, as server-side apply would."""

    def __init__(self, refuse: int | None = None):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.refuse = refuse

    def put(self, obj: dict) -> dict:
        m = obj["metadata"]
        self.objects[(obj["kind"], m["namespace"], m["name"])] = obj
        return obj

    def get(self, api_version, kind, namespace, name):
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def list(self, api_version, kind, namespace, labels):
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind and ns == namespace and labels.items() <= o["metadata"].get("labels", {}).items()
        ]

    def apply(self, obj):
        if self.refuse:
            raise ApiError(self.refuse, "Invalid", "field is immutable")
        live = self.objects.get((obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]), {})
        return self.put({**copy.deepcopy(obj), "status": live.get("status", {})})

    def set_job(self, name: str, **status):
        self.objects[("Job", "ns", name)]["status"] = status


def resource(kind: str, spec: dict, name: str = "x", status: dict | None = None, generation: int = 1) -> dict:
    return {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": kind,
        "spec": spec,
        "status": status or {},
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation},
    }


def done(kind="Complete", reason="Completed"):
    return {"conditions": [{"type": kind, "status": "True", "reason": reason, "message": "m"}]}


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


SFT = {"baseModel": "tiny", "dataset": {"fromCurationJob": "cj"}, "nodes": 2, "gpusPerNode": 8, "maxRestarts": 1}


def test_sftrun_waits_for_its_curation_job_then_trains_on_its_output():
    kube = FakeKube()
    status, events = reconcile(resource("SFTRun", SFT), kube, D, NOW)
    assert status["phase"] == "Pending" and conditions(status)["WaitingForInput"] == ("True", "ReferenceNotFound")
    assert "does not exist" in status["message"] and not kube.list("", "Job", "ns", {})
    assert [e.reason for e in events] == ["ReferenceNotFound"]

    kube.put(resource("CurationJob", {}, name="cj", status={"phase": "Running"}))
    status, _ = reconcile(resource("SFTRun", SFT, status=status), kube, D, NOW)
    assert conditions(status)["WaitingForInput"] == ("True", "InputNotReady")

    kube.put(resource("CurationJob", {}, name="cj", status={"phase": "Succeeded", "outputUri": "pvc://art/cj"}))
    status, _ = reconcile(resource("SFTRun", SFT, status=status), kube, D, NOW)
    assert status["inputUri"] == "pvc://art/cj/selected.jsonl"
    assert status["outputUri"] == "pvc://art/sftruns/ns/x"
    assert conditions(status)["WaitingForInput"] == ("False", "InputReady")
    assert kube.get("", "Job", "ns", "x-train")["spec"]["completions"] == 2
    assert kube.get("", "Service", "ns", "x-train") and kube.get("", "ConfigMap", "ns", "x-train")


def test_a_failed_input_fails_the_resource():
    kube = FakeKube()
    kube.put(resource("SFTRun", {}, name="r", status={"phase": "Failed", "message": "oom"}))
    status, events = reconcile(resource("BudgetForcedServer", {"model": {"fromSFTRun": "r"}}), kube, D, NOW)
    assert status["phase"] == "Failed" and conditions(status)["Failed"] == ("True", "InputFailed")
    assert "oom" in status["message"] and events[0].type == "Warning"


def first_attempt_failed(reason: str) -> tuple[FakeKube, dict, dict, list]:
    """An SFTRun whose first Job failed for `reason`, reconciled once after the failure."""
    kube = FakeKube()
    spec = {**SFT, "dataset": {"uri": "pvc://d/x.jsonl"}}
    status, _ = reconcile(resource("SFTRun", spec), kube, D, NOW)
    kube.set_job("x-train", conditions=done("Failed", reason)["conditions"])
    status, events = reconcile(resource("SFTRun", spec, status=status), kube, D, NOW)
    return kube, spec, status, events


def test_gang_restart_then_budget_exhausted():
    kube, spec, status, events = first_attempt_failed("BackoffLimitExceeded")
    assert status["restarts"] == 1 and status["jobName"] == "x-train-r1" and status["phase"] == "Pending"
    assert "GangRestart" in [e.reason for e in events]
    env = {
        e["name"]: e.get("value")
        for e in kube.get("", "Job", "ns", "x-train-r1")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MASTER_ADDR"] == "x-train-r1-0.x-train"

    kube.set_job("x-train-r1", conditions=done("Failed", "BackoffLimitExceeded")["conditions"])
    status, _ = reconcile(resource("SFTRun", spec, status=status), kube, D, NOW)
    assert (status["phase"], status["restarts"]) == ("Failed", 1)
    assert conditions(status)["Failed"] == ("True", "RestartBudgetExhausted")
    assert len(kube.list("", "Job", "ns", {})) == 2


def test_a_bad_config_is_never_restarted():
    _, _, status, _ = first_attempt_failed("PodFailurePolicy")
    assert (status["phase"], status["restarts"]) == ("Failed", 0)
    assert conditions(status)["Failed"] == ("True", "PodFailurePolicy")


def test_job_phases_from_the_job():
    kube = FakeKube()
    spec = {"pools": {"p": "pvc://d/p"}, "domainColumn": "d", "outputUri": "pvc://o/cj"}
    status, _ = reconcile(resource("CurationJob", spec), kube, D, NOW)
    assert status["phase"] == "Pending"
    kube.set_job("x-curate", active=1)
    status, _ = reconcile(resource("CurationJob", spec, status=status), kube, D, NOW)
    assert status["phase"] == "Running"
    status, _ = reconcile(resource("CurationJob", {**spec, "suspend": True}, status=status), kube, D, NOW)
    assert status["phase"] == "Suspended" and kube.get("", "Job", "ns", "x-curate")["spec"]["suspend"] is True
    kube.set_job("x-curate", **done())
    status, _ = reconcile(resource("CurationJob", spec, status=status), kube, D, LATER)
    assert status["phase"] == "Succeeded" and conditions(status)["Complete"] == ("True", "Completed")
    # Done stays done: a deleted Job is not run again.
    del kube.objects[("Job", "ns", "x-curate")]
    again, events = reconcile(resource("CurationJob", spec, status=status), kube, D, LATER)
    assert again == status and events == [] and kube.get("", "Job", "ns", "x-curate") is None


def test_queued_job_waits_for_kueue():
    kube = FakeKube()
    spec = {"pools": {"p": "pvc://d/p"}, "domainColumn": "d", "queueName": "q"}
    status, _ = reconcile(resource("CurationJob", spec), kube, D, NOW)
    job = kube.get("", "Job", "ns", "x-curate")
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    assert conditions(status)["Complete"] == ("False", "Queued")
    kube.objects[("Job", "ns", "x-curate")]["spec"]["suspend"] = False  # Kueue admits it
    reconcile(resource("CurationJob", spec, status=status), kube, D, NOW)
    assert kube.get("", "Job", "ns", "x-curate")["spec"]["suspend"] is False  # and we don't flip it back


def test_server_ready_with_endpoint_and_eval_sweep_follows_it():
    kube = FakeKube()
    status, _ = reconcile(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}, name="s"), kube, D, NOW)
    assert status["phase"] == "Pending" and status["endpoint"] == "http://s.ns.svc:8000"
    kube.objects[("Deployment", "ns", "s")]["status"] = {"replicas": 1, "readyReplicas": 1}
    status, _ = reconcile(
        resource("BudgetForcedServer", {"model": {"uri": "tiny"}}, name="s", status=status), kube, D, NOW
    )
    assert (status["phase"], status["ready"], status["readyReplicas"]) == ("Ready", "1/1", 1)
    assert conditions(status)["Ready"] == ("True", "Serving")
    kube.put(resource("BudgetForcedServer", {}, name="s", status=status))
    sweep = {
        "target": {"serverRef": "s"},
        "benchmarks": [{"name": "a", "uri": "file:///a"}, {"name": "b", "uri": "file:///b"}],
    }
    evs, _ = reconcile(resource("EvalSweep", sweep), kube, D, NOW)
    assert evs["inputUri"] == "http://s.ns.svc:8000" and kube.get("", "Job", "ns", "x-eval")["spec"]["completions"] == 2
    kube.set_job("x-eval", completedIndexes="0", failedIndexes="1", active=0)
    evs, _ = reconcile(resource("EvalSweep", sweep, status=evs), kube, D, NOW)
    assert evs["progress"] == "2/2" and evs["results"] == {"benchmarks": 2, "succeeded": 1, "failed": 1}


def test_curation_base_models_may_name_a_server_and_wait_until_it_is_ready():
    import json

    kube = FakeKube()
    spec = {
        "pools": {"p": "pvc://d/p.jsonl"},
        "domainColumn": "domain",
        "baseModels": ["base", "http://other:8000@Qwen"],
    }
    status, _ = reconcile(resource("CurationJob", spec, name="cj"), kube, D, NOW)
    assert conditions(status)["WaitingForInput"] == ("True", "ReferenceNotFound")
    assert "spec.baseModels[0]" in status["message"] and not kube.get("", "Job", "ns", "cj-curate")
    kube.put(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}, name="base", status={"phase": "Pending"}))
    status, _ = reconcile(resource("CurationJob", spec, name="cj", status=status), kube, D, NOW)
    assert conditions(status)["WaitingForInput"] == ("True", "InputNotReady")
    kube.put(
        resource(
            "BudgetForcedServer",
            {"model": {"uri": "tiny"}},
            name="base",
            status={"phase": "Ready", "endpoint": "http://base.ns.svc:8000", "inputUri": "tiny"},
        )
    )
    status, _ = reconcile(resource("CurationJob", spec, name="cj", status=status), kube, D, NOW)
    assert status["baseModels"] == ["http://base.ns.svc:8000@tiny", "http://other:8000@Qwen"]
    config = json.loads(kube.get("", "ConfigMap", "ns", "cj-curate")["data"]["config.json"])
    assert config["base_models"] == status["baseModels"]
    # Once started, a server going away does not stop the job.
    del kube.objects[("BudgetForcedServer", "ns", "base")]
    status, _ = reconcile(resource("CurationJob", spec, name="cj", status=status), kube, D, NOW)
    assert status["baseModels"][0] == "http://base.ns.svc:8000@tiny" and status["phase"] != "Failed"


def test_curation_teacher_may_name_a_server_and_wait_until_it_is_ready():
    import json

    kube = FakeKube()
    spec = {
        "pools": {"p": "pvc://d/p.jsonl"},
        "domainColumn": "domain",
        "baseModels": ["http://b:8000@B"],
        "teacher": {"endpoint": "big", "maxTokens": 4096},
    }
    status, _ = reconcile(resource("CurationJob", spec, name="cj"), kube, D, NOW)
    assert conditions(status)["WaitingForInput"] == ("True", "ReferenceNotFound")
    assert "spec.teacher.endpoint" in status["message"] and "teacher" not in status
    assert not kube.get("", "Job", "ns", "cj-curate")
    kube.put(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}, name="big", status={"phase": "Pending"}))
    status, _ = reconcile(resource("CurationJob", spec, name="cj", status=status), kube, D, NOW)
    assert conditions(status)["WaitingForInput"] == ("True", "InputNotReady") and "'big'" in status["message"]
    kube.put(
        resource(
            "BudgetForcedServer",
            {"model": {"uri": "hf://o/Big"}, "servedModelName": "Big"},
            name="big",
            status={"phase": "Ready", "endpoint": "http://big.ns.svc:8000", "inputUri": "hf://o/Big"},
        )
    )
    status, _ = reconcile(resource("CurationJob", spec, name="cj", status=status), kube, D, NOW)
    assert status["teacher"] == "http://big.ns.svc:8000@Big" and status["baseModels"] == ["http://b:8000@B"]
    config = json.loads(kube.get("", "ConfigMap", "ns", "cj-curate")["data"]["config.json"])
    assert (config["teacher"]["endpoint"], config["teacher"]["max_tokens"]) == (status["teacher"], 4096)
    # Once started, the teacher restarting does not stop the job.
    kube.put(resource("BudgetForcedServer", {"model": {"uri": "hf://o/Big"}}, name="big", status={"phase": "Pending"}))
    status, _ = reconcile(resource("CurationJob", spec, name="cj", status=status), kube, D, NOW)
    assert status["teacher"] == "http://big.ns.svc:8000@Big" and conditions(status)["WaitingForInput"][0] == "False"


def test_curation_teacher_url_and_secret_reach_the_status_and_the_job_not_the_key():
    kube, read = FakeKube(), []
    get = kube.get
    kube.get = lambda api_version, kind, *rest: read.append(kind) or get(api_version, kind, *rest)
    spec = {
        "pools": {"p": "pvc://d/p.jsonl"},
        "domainColumn": "domain",
        "teacher": {"endpoint": "https://api.example.com/v1@R1", "apiKeySecret": {"name": "teacher-key"}},
    }
    status, events = reconcile(resource("CurationJob", spec, name="cj"), kube, D, NOW)
    assert "Secret" not in read  # the kubelet resolves secretKeyRef: the operator needs no access to Secrets
    assert status["teacher"] == "https://api.example.com/v1@R1" and "baseModels" not in status
    env = kube.get("", "Job", "ns", "cj-curate")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "THINKUBE_TEACHER_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "teacher-key", "key": "api-key"}},
    } in env
    assert "teacher-key" not in str(status) + str(events)


def test_impossible_specs_are_conditions_not_crashes():
    kube = FakeKube()
    spec = {"pools": {"p": "pvc://d/p"}, "domainColumn": "d"}
    status, events = reconcile(resource("CurationJob", spec), kube, Defaults(image="i"), NOW)
    assert status["phase"] == "Failed" and conditions(status)["Synced"] == ("False", "InvalidSpec")
    assert "spec.outputUri" in status["message"] and "--artifacts-pvc" in status["message"]
    assert [e.type for e in events] == ["Warning"]
    status, _ = reconcile(resource("SFTRun", {"baseModel": "tiny", "dataset": {}}), kube, D, NOW)
    assert conditions(status)["Failed"] == ("True", "InvalidSpec") and "spec.dataset" in status["message"]


def test_children_owned_by_someone_else_are_left_alone():
    kube = FakeKube()
    kube.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ns"}})
    status, _ = reconcile(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}, name="s"), kube, D, NOW)
    assert (
        conditions(status)["Synced"] == ("False", "NameConflict")
        and "ownerReferences" not in kube.get("", "Service", "ns", "s")["metadata"]
    )


def test_refused_apply_is_reported_and_outages_raise():
    status, events = reconcile(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}), FakeKube(422), D, NOW)
    assert conditions(status)["Synced"] == ("False", "ApplyFailed") and "immutable" in status["message"] + str(events)
    with pytest.raises(ApiError):
        reconcile(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}), FakeKube(503), D, NOW)


def test_conditions_keep_their_transition_time_and_events_only_on_change():
    kube = FakeKube()
    first, events = reconcile(resource("BudgetForcedServer", {"model": {"uri": "tiny"}}), kube, D, NOW)
    second, events2 = reconcile(
        resource("BudgetForcedServer", {"model": {"uri": "tiny"}}, status=first), kube, D, LATER
    )
    assert second == first and events and not events2


def test_status_patch_and_index_counting():
    assert status_patch({"a": 1, "b": 2, "gone": 3}, {"a": 1, "b": 5}) == {"b": 5, "gone": None}
    assert (count_indexes("0-2,5"), count_indexes(""), count_indexes(None)) == (4, 0, 0)


def test_every_resource_kind_is_registered_once_with_what_it_offers():
    from thinkube.api.resources import KINDS as RESOURCES
    from thinkube.operator.kinds import KINDS

    assert [k.resource for k in KINDS.values()] == list(RESOURCES)
    assert {name: (k.ready.value, k.primary) for name, k in KINDS.items()} == {
        "CurationJob": ("Succeeded", "Complete"),
        "SFTRun": ("Succeeded", "Complete"),
        "BudgetForcedServer": ("Ready", "Ready"),
        "EvalSweep": ("Succeeded", "Complete"),
    }
    status = {"outputUri": "pvc://o/x/", "endpoint": "http://s.ns.svc:8000"}
    assert [k.offered(status) for k in KINDS.values()] == [
        "pvc://o/x/selected.jsonl",
        "pvc://o/x/final",
        "http://s.ns.svc:8000",
        "pvc://o/x/",
    ]
