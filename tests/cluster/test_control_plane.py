"""The local control plane behaves like a real cluster where Thinkube depends on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.wait import wait_for

DATA = Path(__file__).parent / "data"


def test_server_version_is_set(cluster):
    v = cluster.kubectl_json("version")["serverVersion"]
    assert v["gitVersion"].startswith("v1.") and v["gitVersion"] != "v0.0.0", v


@pytest.fixture(scope="module")
def widget_crd(cluster):
    cluster.kubectl("apply", "-f", str(DATA / "widget-crd.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.test.thinkube.dev", "--timeout=60s")
    return "widgets.test.thinkube.dev"


def test_crd_accepts_valid_cr_and_applies_defaults(cluster, namespace, widget_crd):
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="""
apiVersion: test.thinkube.dev/v1
kind: Widget
metadata: {name: ok}
spec: {model: tiny, minThinkingTokens: 10, maxThinkingTokens: 100}
""",
    )
    got = cluster.kubectl_json("get", "wdg", "ok", "-n", namespace)
    assert got["spec"]["mode"] == "greedy"  # schema default applied server-side


@pytest.mark.parametrize(
    "spec, field",
    [
        ("{model: tiny, minThinkingTokens: 500, maxThinkingTokens: 100}", "spec.minThinkingTokens"),
        ("{model: tiny, maxThinkingTokens: 0}", "spec.maxThinkingTokens"),
        ("{model: tiny, mode: beam}", "spec.mode"),
        ("{mode: greedy}", "spec.model"),
    ],
)
def test_crd_rejects_invalid_cr_naming_the_field(cluster, namespace, widget_crd, spec, field):
    r = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input=f"""
apiVersion: test.thinkube.dev/v1
kind: Widget
metadata: {{name: bad}}
spec: {spec}
""",
    )
    assert r.returncode != 0
    assert field in r.stderr, r.stderr
    assert cluster.kubectl("get", "wdg", "bad", "-n", namespace, check=False).returncode != 0


def test_job_gets_pod_and_owner_deletion_collects_it(cluster, namespace):
    from kubernetes import client

    api = cluster.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="hello"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="main", image="busybox", command=["true"])],
                )
            ),
        ),
    )
    created = batch.create_namespaced_job(namespace, job)
    pods = wait_for(
        lambda: core.list_namespaced_pod(namespace, label_selector="job-name=hello").items,
        "the job controller to create a pod",
    )
    owner = pods[0].metadata.owner_references[0]
    assert (owner.kind, owner.uid) == ("Job", created.metadata.uid)
    # Deleting the owner in the background leaves the pods to the garbage collector.
    batch.delete_namespaced_job("hello", namespace, propagation_policy="Background")
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=hello").items,
        "the garbage collector to delete the job's pod",
    )


def test_helm_reaches_the_api_server(cluster, namespace, tmp_path):
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata: {k: {{ .Values.k | quote }}}\n"
    )
    r = cluster.helm("install", "probe", str(chart), "-n", namespace, "--set", "k=v1", "--wait", "--timeout", "60s")
    assert r.returncode == 0, r.stderr
    assert cluster.kubectl_json("get", "configmap", "probe", "-n", namespace)["data"] == {"k": "v1"}
