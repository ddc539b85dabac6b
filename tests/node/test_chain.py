"""The s1 chain in the cluster with real pods of the image and the tiny model.

`thinkube demo --on-cluster` against the operator installed by the chart: the demo teacher
served for the distill stage and the base model for the difficulty filter -> CurationJob -> a 2-pod SFTRun (torchrun across pods,
FSDP2 over gloo) -> BudgetForcedServer (vLLM on CPU) -> EvalSweep, then a served completion
with a thinking budget, logs by label, the trainers' progress reported through the chart's
control plane pod, and a whole-gang restart that resumes.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.node.test_smoke import job
from tests.support.control_plane import user_role
from tests.support.demo import SMALL, run_on_cluster
from tests.support.wait import wait_for
from thinkube.workloads.demo.tasks import ANSWER_INSTRUCTION

DEMO = "thinkube-demo"
# The chain (curate, train, serve, sweep) runs in the module's first test, through its fixture.
pytestmark = pytest.mark.timeout(2700)


@pytest.fixture(scope="module")
def ns(node_cluster):
    """A namespace with the operator installed by the chart, watching it."""
    k = node_cluster
    name = f"tk-chain-{uuid.uuid4().hex[:6]}"
    k.kubectl("create", "namespace", name)
    k.install_chart("tk", name, f"operator.watchNamespaces={{{name}}}", "operator.resyncSeconds=5")
    yield name
    k.kubectl("delete", "thinkube", "--all", "-n", name, "--timeout=60s", check=False)
    k.helm("uninstall", "tk", "-n", name, "--wait")
    k.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def demo(node_cluster, ns, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run = run_on_cluster(node_cluster, ns, out, *SMALL, image=node_cluster.image, timeout_s=1800)
    return out, run


def test_the_demo_chain_runs_in_pods_and_reports_the_scaling_verdict(demo):
    out, run = demo
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    cur = report["curation"]
    assert cur["dedupe"]["dropped"] == {"duplicate": 6} and cur["decontaminate"]["dropped"] == {
        "contaminated:heldout": 6
    }
    assert cur["difficulty"]["in"] > 0  # the served base model answered the pool
    # The served demo teacher wrote the traces; its planted failure was dropped.
    assert cur["distill"]["in"] == cur["distill"]["kept"] and cur["quality"]["dropped"]["teacher_failed"] == 1
    assert cur["select"]["kept"] == 120
    assert report["training"]["steps"] > 0 and report["training"]["last_loss"] < report["training"]["first_loss"]
    scaling = report["scaling"]
    assert (scaling["smallest"], scaling["largest"]) == ("max4", "max40")
    assert f"{abs(scaling['margin_points']):.1f} points" in scaling["verdict"]
    assert "## Test-time scaling" in run.stdout and scaling["verdict"] in run.stdout
    plot = out / "cluster" / "eval" / "heldout" / "accuracy_vs_thinking.png"
    assert plot.stat().st_size > 1000 and (out / "loss.png").stat().st_size > 1000


def test_training_ran_as_two_pods_and_logs_come_by_label(node_cluster, ns, demo):
    k = node_cluster
    job = k.kubectl_json("get", "job", f"{DEMO}-train", "-n", ns)
    assert job["spec"]["completions"] == 2 and job["status"]["succeeded"] == 2
    logs = k.kubectl(
        "logs", "-n", ns, "-l", f"thinkube.dev/name={DEMO},thinkube.dev/kind=SFTRun", "--prefix", "--tail=-1"
    ).stdout
    pods = {line.split("]", 1)[0] for line in logs.splitlines() if line.startswith("[pod/")}
    assert len(pods) == 2, logs[-2000:]
    assert "final model saved" in logs


def test_trainers_report_progress_through_the_control_plane_pod(node_cluster, ns, demo):
    """Rank 0 posts its progress with a projected token to the chart's control plane, which writes
    status.progress; a researcher reads the run and its rank-0 log through the same pod."""
    k = node_cluster
    progress = k.kubectl_json("get", "sftrun", DEMO, "-n", ns)["status"]["progress"]
    assert progress["step"] == progress["totalSteps"] > 0 and isinstance(progress["loss"], float), progress
    api = k.kubectl_json("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=api")["items"][0]
    k.kubectl("create", "serviceaccount", "researcher", "-n", ns)
    k.kubectl("apply", "-n", ns, "-f", "-", input=user_role("researcher"))
    token = k.kubectl("create", "token", "researcher", "-n", ns).stdout.strip()
    base = f"http://{api['status']['podIP']}:8000/v1/namespaces/{ns}/sftruns"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        run = c.get(f"{base}/{DEMO}").json()
        assert run["status"]["progress"]["step"] == progress["step"]
        log = c.get(f"{base}/{DEMO}/logs", params={"rank": 0, "tail": 5000})
        assert log.status_code == 200 and "final model saved" in log.text, log.text[-2000:]


def test_the_trained_server_answers_within_a_thinking_budget(node_cluster, ns, demo):
    k = node_cluster
    out, _ = demo
    first = json.loads((out / "data" / "heldout.jsonl").read_text().splitlines()[0])
    question = first["question"] + ANSWER_INSTRUCTION  # as the evaluation asks it
    script = f"""
import json, urllib.request
body = {{"model": "thinkube-demo", "max_tokens": 64, "max_thinking_tokens": 8,
        "messages": [{{"role": "user", "content": {question!r}}}]}}
req = urllib.request.Request("http://{DEMO}.{ns}.svc:8000/v1/chat/completions", data=json.dumps(body).encode(),
                             headers={{"Content-Type": "application/json"}})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=60))))
"""
    k.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(job("ask", k, script)))
    k.kubectl("wait", "-n", ns, "job/ask", "--for=condition=Complete", "--timeout=180s")
    answer = json.loads(k.kubectl("logs", "-n", ns, "job/ask").stdout)
    used = answer["usage"]["completion_tokens_details"]["reasoning_tokens"]
    choice = answer["choices"][0]
    # The budget held: thinking stopped at 8 tokens and the server forced the closing text
    # (what the briefly trained tiny model writes after it is its own business).
    assert 0 < used <= 8 and choice["budget"]["thinking_tokens"] == used, answer
    assert choice["budget"]["forced_end"] and choice["message"]["content"].startswith("Final Answer:"), answer


def test_deleting_a_training_pod_restarts_the_gang_which_resumes_and_finishes(node_cluster, ns, demo):
    k = node_cluster
    run = {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": "SFTRun",
        "metadata": {"name": "gang"},
        "spec": {
            "baseModel": "tiny",
            "dataset": {"uri": f"pvc://{DEMO}/runs/curate/selected.jsonl"},
            "nodes": 2,
            "gpusPerNode": 0,
            "outputUri": f"pvc://{DEMO}/runs/gang",
            "maxRestarts": 2,
            "training": {
                "epochs": 30,
                "learningRate": 1e-3,
                "globalBatchSize": 8,
                "blockSize": 256,
                "saveEvery": 5,
                "precision": "auto",
                "gradientCheckpointing": False,
            },
        },
    }
    k.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(run))

    def logs() -> str:
        return k.kubectl("logs", "-n", ns, "-l", "thinkube.dev/name=gang", "--tail=-1", check=False).stdout

    wait_for(lambda: "checkpoint saved" in logs(), "the first checkpoint of SFTRun gang", timeout=600, interval=2)
    k.kubectl(
        "delete",
        "pod",
        "-n",
        ns,
        "-l",
        "job-name=gang-train,batch.kubernetes.io/job-completion-index=1",
        "--wait=false",
    )
    done = wait_for(
        lambda: (lambda s: s if s.get("phase") in ("Succeeded", "Failed") else None)(
            k.kubectl_json("get", "sftrun", "gang", "-n", ns).get("status", {})
        ),
        "SFTRun gang to finish",
        timeout=900,
        interval=2,
    )
    assert done["phase"] == "Succeeded", done
    assert done["restarts"] == 1
    assert k.kubectl("get", "job", "gang-train-r1", "-n", ns, check=False).returncode == 0
    resumed = k.kubectl("logs", "-n", ns, "-l", "job-name=gang-train-r1", "--tail=-1").stdout
    assert "resumed from" in resumed, resumed[-3000:]
