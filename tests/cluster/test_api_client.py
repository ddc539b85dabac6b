"""The Python client and the `thinkube submit|runs|logs|results` commands against a real
control plane (the `api` fixture: `thinkube api` as the chart's ServiceAccount), called with
the token of a user whose Role allows the Thinkube kinds. There is no kubelet: progress and
outputs are written the way the operator and the trainer would, through the status
subresource and the artifacts folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support.control_plane import CLAIM, ControlPlane, post_event
from tests.support.wait import wait_for
from thinkube.api.resources import SFTRun
from thinkube.client import ApiError, Client
from thinkube.constants import ENV_API_TOKEN, ENV_API_URL


def client(api: ControlPlane, token: str | None = None) -> Client:
    return Client(api.url, token or api.token, timeout=30)


def thinkube(api: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The command line as alice, with the URL and token from the environment as users set them."""
    return subprocess.run(
        [sys.executable, "-m", "thinkube.cli", *args, "-n", api.namespace],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, ENV_API_URL: api.url, ENV_API_TOKEN: api.token},
        timeout=120,
    )


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
    with client(api) as c:
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
    with client(api) as c:
        answered = c.create(sft("dry"), api.namespace, dry_run=True)
        assert answered["metadata"]["name"] == "dry"
        with pytest.raises(ApiError, match="404"):
            c.get("sft", "dry", api.namespace)
        c.create(sft("kept"), api.namespace)
        c.delete("sft", "kept", api.namespace, dry_run=True)
        assert c.get("sft", "kept", api.namespace)["metadata"]["name"] == "kept"


def test_the_server_names_the_field_it_refuses(api):
    with client(api) as c, pytest.raises(ApiError) as e:
        c.create(sft("x" * 41), api.namespace)  # fine for the model; too long for an SFTRun's children
    assert e.value.status == 422 and e.value.field == "metadata.name" and "40" in e.value.detail
    assert e.value.type.startswith("https://") and e.value.title


def test_tokens_without_rights_are_refused(api):
    with client(api, api.outsider_token) as c, pytest.raises(ApiError) as e:
        list(c.list("sft", api.namespace))
    assert e.value.status == 403
    with client(api, "not-a-token") as c, pytest.raises(ApiError) as e:
        c.get("sft", "x", api.namespace)
    assert e.value.status == 401


def test_events_of_a_run(cluster, api):
    with client(api) as c:
        run = c.create(sft("evented"), api.namespace)
        post_event(
            lambda *a, input=None: cluster.kubectl(*a, input=input).stdout,
            run,
            "Created",
            "created Job evented-train-r0",
            "2026-01-02T03:04:05Z",
        )
        [seen] = wait_for(lambda: c.events("sft", "evented", api.namespace), "the run's event")
        assert (seen["type"], seen["reason"], seen["message"]) == ("Normal", "Created", "created Job evented-train-r0")


def test_logs_of_a_run_without_pods_say_so(api):
    with client(api) as c:
        c.create(sft("quiet"), api.namespace)
        with pytest.raises(ApiError) as e:
            list(c.logs("sft", "quiet", api.namespace, tail=10, rank=0))
    assert e.value.status == 404 and "no pods" in e.value.detail
    r = thinkube(api, "logs", "sftrun/quiet", "--tail", "5")
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
    with client(api) as c:
        c.create(sweep, api.namespace)
        set_status(cluster, api, "evalsweeps", "sweep", {"phase": "Succeeded", "outputUri": f"pvc://{CLAIM}/{out}"})
        result = c.results("evs", "sweep", api.namespace)
        assert result["phase"] == "Succeeded" and result["summary"] == {"aime24": {"accuracy": 0.5, "n": 30}}
        assert {f["name"] for f in result["files"]} == {"results.json", "aime24/report.md"}
        assert c.result_file("evs", "sweep", "aime24/report.md", api.namespace) == b"# AIME24\n"

    r = thinkube(api, "results", "evalsweep/sweep", "--out", str(tmp_path / "got"))
    assert r.returncode == 0, r.stderr
    assert "aime24.accuracy   0.5" in r.stdout and "Succeeded" in r.stdout
    assert (tmp_path / "got" / "aime24" / "report.md").read_text() == "# AIME24\n"
    assert json.loads((tmp_path / "got" / "results.json").read_text())["aime24"]["n"] == 30


def test_submit_then_runs_shows_phase_step_and_loss(cluster, api, tmp_path):
    docs = [manifest("cli-a"), manifest("cli-b")]  # status included: the client leaves it out
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump_all(docs))

    dry = thinkube(api, "submit", "-f", str(path), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        "created sftrun/cli-a (dry run)",
        "created sftrun/cli-b (dry run)",
    ], dry.stderr
    r = thinkube(api, "submit", "-f", "-", stdin=path.read_text())
    assert r.returncode == 0 and r.stdout.splitlines() == ["created sftrun/cli-a", "created sftrun/cli-b"], r.stderr
    again = thinkube(api, "submit", "-f", str(path))
    assert again.returncode == 1 and "409" in again.stderr, again.stderr  # already exists: the server's answer

    progress = {"step": 3, "totalSteps": 10, "loss": 1.2345678, "updatedAt": "2026-01-02T03:04:05Z"}
    set_status(cluster, api, "sftruns", "cli-a", {"phase": "Running", "progress": progress})
    r = thinkube(api, "runs", "--kind", "sft")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PHASE", "AGE", "STEP", "LOSS"]
    row = next(line.split() for line in lines if " cli-a " in line)
    assert row[0:3] == ["SFTRun", "cli-a", "Running"] and row[4:] == ["3/10", "1.235"]

    everything = thinkube(api, "runs", "-l", "team=nobody")
    assert everything.returncode == 0 and "no resources" in everything.stdout


def test_submit_reports_a_bad_document_without_sending_any(api, tmp_path):
    path = tmp_path / "bad.yaml"
    good, bad = manifest("never-a"), manifest("never-b")
    bad["spec"]["nodes"] = 0
    path.write_text(yaml.safe_dump_all([good, bad]))
    r = thinkube(api, "submit", "-f", str(path))
    assert r.returncode == 2 and "spec.nodes" in r.stderr, r.stderr
    with client(api) as c, pytest.raises(ApiError, match="404"):
        c.get("sft", "never-a", api.namespace)
