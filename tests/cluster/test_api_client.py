"""The Python client and the `thinkube submit|runs|logs|results` commands against a real
control plane: `thinkube api` in a subprocess, acting as the chart's api ServiceAccount (so
the chart's RBAC is what it has), called with the token of a user whose Role allows the
Thinkube kinds. There is no kubelet: progress and outputs are written the way the operator
and the trainer would, through the status subresource and the artifacts folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cluster.test_api_chart import chart_applied
from tests.cluster.test_operator import service_account_kubeconfig
from tests.support.wait import wait_for
from thinkube.api.resources import SFTRun
from thinkube.client import ApiError, Client
from thinkube.constants import ENV_API_TOKEN, ENV_API_URL
from thinkube.workloads.serving.process import free_port

REPO = Path(__file__).resolve().parents[2]
CLAIM = "art"
USER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: thinkube-user}
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
metadata: {name: thinkube-user}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: thinkube-user}
subjects: [{kind: ServiceAccount, name: alice}]
"""


@dataclass
class ControlPlane:
    url: str
    namespace: str
    token: str  # alice: may use the Thinkube kinds in `namespace`
    outsider_token: str  # bob: a valid token with no rights
    pvc_root: Path

    def client(self, token: str | None = None) -> Client:
        return Client(self.url, token or self.token, timeout=30)

    def thinkube(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, ENV_API_URL: self.url, ENV_API_TOKEN: self.token}
        return subprocess.run(
            [sys.executable, "-m", "thinkube.cli", *args, "-n", self.namespace],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def api(cluster, tmp_path_factory):
    with chart_applied(cluster, "tk-apiclient") as ns:
        yield from _serve(cluster, ns, tmp_path_factory.mktemp("api"))


def _serve(cluster, ns: str, tmp: Path) -> Iterator[ControlPlane]:
    cluster.kubectl("create", "serviceaccount", "alice", "-n", ns)
    cluster.kubectl("create", "serviceaccount", "bob", "-n", ns)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=USER_ROLE)
    token = cluster.kubectl("create", "token", "alice", "-n", ns, "--duration=1h").stdout.strip()
    outsider = cluster.kubectl("create", "token", "bob", "-n", ns, "--duration=1h").stdout.strip()
    kubeconfig = service_account_kubeconfig(cluster, ns, f"{ns}-thinkube-api", tmp / "kubeconfig")
    pvc_root = tmp / "pvc"
    (pvc_root / CLAIM).mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "api.log").open("a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "thinkube.cli", "api", "--port", str(port), "--log-format", "text"]
        + ["--pvc-root", str(pvc_root), "--namespace", ns, "--review-cache-seconds", "0"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _ok(f"{url}/healthz") or proc.poll() is not None, "the control plane's /healthz")
        assert proc.poll() is None, f"thinkube api exited:\n{(tmp / 'api.log').read_text()[-3000:]}"
        # Ready as the chart's ServiceAccount: its rights reach the Kubernetes API's own /readyz.
        wait_for(lambda: _ok(f"{url}/readyz"), "the control plane's /readyz")
        yield ControlPlane(url, ns, token, outsider, pvc_root)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def sft(name: str, **labels: str) -> SFTRun:
    return SFTRun.model_validate(
        {
            "kind": "SFTRun",
            "metadata": {"name": name, "labels": labels},
            "spec": {"baseModel": "tiny", "dataset": {"uri": "pvc://art/data.jsonl"}, "nodes": 1, "gpusPerNode": 0},
        }
    )


def manifest(name: str) -> dict:
    """An SFTRun as a user's YAML has it, status and all (as `kubectl get -o yaml` writes it)."""
    return sft(name).model_dump(mode="json", by_alias=True, exclude_none=True)


def set_status(cluster, api: ControlPlane, plural: str, name: str, status: dict) -> None:
    cluster.kubectl(
        "patch",
        plural,
        name,
        "-n",
        api.namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def test_create_get_list_every_page_patch_and_delete(api):
    with api.client() as c:
        created = c.create(sft("page-a", team="math"), api.namespace)
        assert created["metadata"]["namespace"] == api.namespace and created["spec"]["training"]["epochs"] == 5
        for name in ("page-b", "page-c"):
            c.create(sft(name, team="math"), api.namespace)
        c.create(sft("other"), api.namespace)
        assert c.get("SFTRun", "page-a", api.namespace)["metadata"]["uid"] == created["metadata"]["uid"]
        # One object per page: the client follows `continue` to the end.
        paged = [o["metadata"]["name"] for o in c.list("sft", api.namespace, label_selector="team=math", limit=1)]
        assert paged == ["page-a", "page-b", "page-c"]

        assert c.suspend("sftruns", "page-a", api.namespace)["spec"]["suspend"] is True
        assert c.resume("sftruns", "page-a", api.namespace)["spec"]["suspend"] is False
        patched = c.patch("sft", "page-b", {"metadata": {"labels": {"team": "physics"}}}, api.namespace)
        assert patched["metadata"]["labels"] == {"team": "physics"}

        c.delete("sft", "page-c", api.namespace)
        with pytest.raises(ApiError) as e:
            c.get("sft", "page-c", api.namespace)
        assert e.value.status == 404


def test_dry_run_creates_and_deletes_nothing(api):
    with api.client() as c:
        answered = c.create(sft("dry"), api.namespace, dry_run=True)
        assert answered["metadata"]["name"] == "dry"
        with pytest.raises(ApiError, match="404"):
            c.get("sft", "dry", api.namespace)
        c.create(sft("kept"), api.namespace)
        c.delete("sft", "kept", api.namespace, dry_run=True)
        assert c.get("sft", "kept", api.namespace)["metadata"]["name"] == "kept"


def test_the_server_names_the_field_it_refuses(api):
    with api.client() as c, pytest.raises(ApiError) as e:
        c.create(sft("x" * 41), api.namespace)  # fine for the model; too long for an SFTRun's children
    assert e.value.status == 422 and e.value.field == "metadata.name" and "40" in e.value.detail
    assert e.value.type.startswith("https://") and e.value.title


def test_tokens_without_rights_are_refused(api):
    with api.client(api.outsider_token) as c, pytest.raises(ApiError) as e:
        list(c.list("sft", api.namespace))
    assert e.value.status == 403
    with api.client("not-a-token") as c, pytest.raises(ApiError) as e:
        c.get("sft", "x", api.namespace)
    assert e.value.status == 401


def test_events_of_a_run(cluster, api):
    with api.client() as c:
        run = c.create(sft("evented"), api.namespace)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"evented.{uuid.uuid4().hex[:8]}"},
            "involvedObject": {
                "apiVersion": "thinkube.dev/v1alpha1",
                "kind": "SFTRun",
                "name": "evented",
                "namespace": api.namespace,
                "uid": run["metadata"]["uid"],
            },
            "type": "Normal",
            "reason": "Created",
            "message": "created Job evented-train-r0",
            "firstTimestamp": "2026-01-02T03:04:05Z",
            "lastTimestamp": "2026-01-02T03:04:05Z",
            "count": 1,
            "source": {"component": "thinkube-operator"},
        }
        cluster.kubectl("create", "-n", api.namespace, "-f", "-", input=json.dumps(event))
        [seen] = wait_for(lambda: c.events("sft", "evented", api.namespace), "the run's event")
        assert (seen["type"], seen["reason"], seen["message"]) == ("Normal", "Created", "created Job evented-train-r0")


def test_logs_of_a_run_without_pods_say_so(api):
    with api.client() as c:
        c.create(sft("quiet"), api.namespace)
        with pytest.raises(ApiError) as e:
            list(c.logs("sft", "quiet", api.namespace, tail=10, rank=0))
    assert e.value.status == 404 and "no pods" in e.value.detail
    r = api.thinkube("logs", "sftrun/quiet", "--tail", "5")
    assert r.returncode == 1 and "404" in r.stderr and "no pods" in r.stderr, r.stderr


def test_results_summary_and_files(cluster, api, tmp_path):
    out = f"evalsweeps/{api.namespace}/sweep"
    folder = api.pvc_root / CLAIM / out
    (folder / "aime24").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"aime24": {"accuracy": 0.5, "n": 30}}))
    (folder / "aime24" / "report.md").write_text("# AIME24\n")
    sweep = {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": "EvalSweep",
        "metadata": {"name": "sweep"},
        "spec": {
            "target": {"url": "http://server:8000/v1", "model": "tiny"},
            "benchmarks": [{"name": "aime24", "uri": "pvc://art/aime24.jsonl"}],
            "outputUri": f"pvc://{CLAIM}/{out}",
        },
    }
    with api.client() as c:
        c.create(sweep, api.namespace)
        set_status(cluster, api, "evalsweeps", "sweep", {"phase": "Succeeded", "outputUri": f"pvc://{CLAIM}/{out}"})
        result = c.results("evs", "sweep", api.namespace)
        assert result["phase"] == "Succeeded" and result["summary"] == {"aime24": {"accuracy": 0.5, "n": 30}}
        assert {f["name"] for f in result["files"]} == {"results.json", "aime24/report.md"}
        assert c.result_file("evs", "sweep", "aime24/report.md", api.namespace) == b"# AIME24\n"

    r = api.thinkube("results", "evalsweep/sweep", "--out", str(tmp_path / "got"))
    assert r.returncode == 0, r.stderr
    assert "aime24.accuracy   0.5" in r.stdout and "Succeeded" in r.stdout
    assert (tmp_path / "got" / "aime24" / "report.md").read_text() == "# AIME24\n"
    assert json.loads((tmp_path / "got" / "results.json").read_text())["aime24"]["n"] == 30


def test_submit_then_runs_shows_phase_step_and_loss(cluster, api, tmp_path):
    docs = [manifest("cli-a"), manifest("cli-b")]  # status included: the client leaves it out
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump_all(docs))

    dry = api.thinkube("submit", "-f", str(path), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        "created sftrun/cli-a (dry run)",
        "created sftrun/cli-b (dry run)",
    ], dry.stderr
    r = api.thinkube("submit", "-f", "-", stdin=path.read_text())
    assert r.returncode == 0 and r.stdout.splitlines() == ["created sftrun/cli-a", "created sftrun/cli-b"], r.stderr
    again = api.thinkube("submit", "-f", str(path))
    assert again.returncode == 1 and "409" in again.stderr, again.stderr  # already exists: the server's answer

    progress = {"step": 3, "totalSteps": 10, "loss": 1.2345678, "updatedAt": "2026-01-02T03:04:05Z"}
    set_status(cluster, api, "sftruns", "cli-a", {"phase": "Running", "progress": progress})
    r = api.thinkube("runs", "--kind", "sft")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PHASE", "AGE", "STEP", "LOSS"]
    row = next(line.split() for line in lines if " cli-a " in line)
    assert row[0:3] == ["SFTRun", "cli-a", "Running"] and row[4:] == ["3/10", "1.235"]

    everything = api.thinkube("runs", "-l", "team=nobody")
    assert everything.returncode == 0 and "no resources" in everything.stdout


def test_submit_reports_a_bad_document_without_sending_any(api, tmp_path):
    path = tmp_path / "bad.yaml"
    good, bad = manifest("never-a"), manifest("never-b")
    bad["spec"]["nodes"] = 0
    path.write_text(yaml.safe_dump_all([good, bad]))
    r = api.thinkube("submit", "-f", str(path))
    assert r.returncode == 2 and "spec.nodes" in r.stderr, r.stderr
    with api.client() as c, pytest.raises(ApiError, match="404"):
        c.get("sft", "never-a", api.namespace)
