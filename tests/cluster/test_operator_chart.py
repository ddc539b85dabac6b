"""The Helm chart: lint, render, and server-side dry run of what it renders."""

from __future__ import annotations

import yaml

from tests.support.paths import CHART


def render(cluster, namespace: str, *sets: str) -> list[dict]:
    args = [a for s in sets for a in ("--set", s)]
    r = cluster.helm("template", "tk", str(CHART), "-n", namespace, *args)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs: list[dict], component: str = "operator") -> dict[str, list[dict]]:
    """The rendered objects of one component (operator or api) by kind; unlabelled ones count as the operator's."""
    out: dict[str, list[dict]] = {}
    for d in docs:
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component", "operator") == component:
            out.setdefault(d["kind"], []).append(d)
    return out


def test_chart_lints(cluster):
    r = cluster.helm("lint", str(CHART))
    assert r.returncode == 0 and "0 chart(s) failed" in r.stdout, r.stdout + r.stderr


def test_cluster_wide_by_default_and_the_operator_args(cluster, namespace):
    docs = by_kind(
        render(
            cluster,
            namespace,
            "artifacts.existingClaim=art",
            "operator.workloadTolerations={nvidia.com/gpu:NoSchedule}",
        )
    )
    assert "Role" not in docs and len(docs["ClusterRole"]) == 2 and len(docs["ClusterRoleBinding"]) == 2
    deployment = docs["Deployment"][0]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["thinkube", "operator"]
    assert {
        "--artifacts-pvc=art",
        "--toleration=nvidia.com/gpu:NoSchedule",
        "--image=ghcr.io/thinkube/thinkube:0.1.0",
    } <= set(container["args"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_namespaced_mode_grants_only_roles_in_the_watched_namespaces(cluster, namespace):
    docs = by_kind(render(cluster, namespace, "operator.watchNamespaces={team-a,team-b}"))
    assert [r["metadata"]["namespace"] for r in docs["Role"]] == ["team-a", "team-b"]
    assert [r["metadata"]["name"] for r in docs["ClusterRole"]] == ["tk-thinkube-discovery"]
    verbs = {v for rule in docs["ClusterRole"][0]["rules"] for v in rule["verbs"]}
    assert verbs == {"list", "watch"}  # cluster-wide, the operator only reads
    assert "--namespace=team-a" in docs["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_rendered_chart_passes_server_side_dry_run(cluster, namespace):
    r = cluster.helm("template", "tk", str(CHART), "-n", namespace, "--skip-crds")
    assert r.returncode == 0, r.stderr
    out = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=r.stdout).stdout
    assert "deployment.apps/tk-thinkube created (server dry run)" in out, out


def test_gpu_storage_and_token_values_reach_the_operator(cluster, namespace):
    docs = by_kind(
        render(
            cluster,
            namespace,
            "gpu.resourceName=amd.com/gpu",
            "gpu.runtimeClassName=nvidia",
            "gpu.nodeSelector.accelerator=h100",
            "gpu.tolerations={nvidia.com/gpu:NoSchedule}",
            "artifacts.create=true",
            "modelCache.existingClaim=hf-cache",
            "huggingface.tokenSecret.name=hf",
            "imagePullSecrets[0].name=regcred",
        )
    )
    pod = docs["Deployment"][0]["spec"]["template"]["spec"]
    args = set(pod["containers"][0]["args"])
    assert {
        "--gpu-resource=amd.com/gpu",
        "--gpu-runtime-class=nvidia",
        "--gpu-node-selector=accelerator=h100",
        "--gpu-toleration=nvidia.com/gpu:NoSchedule",
        "--artifacts-pvc=tk-thinkube-artifacts",
        "--model-cache-pvc=hf-cache",
        "--hf-token-secret=hf:token",
    } <= args
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    [claim] = docs["PersistentVolumeClaim"]  # only the one the chart creates; hf-cache already exists
    assert claim["metadata"]["name"] == "tk-thinkube-artifacts"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_operator_pod_is_non_root_with_a_read_only_root_and_a_writable_tmp(cluster, namespace):
    pod = by_kind(render(cluster, namespace))["Deployment"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_values_schema_rejects_bad_values_naming_the_field(cluster, namespace):
    for value, field in (
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("gpu.tolerations={nvidia.com/gpu}", "tolerations"),
        ("artifacts.size=lots", "size"),
        ("operator.artifactsPvc=old", "artifactsPvc"),
        ("api.port=0", "port"),
        ("api.service.type=Internal", "type"),
        ("api.reviewCacheSeconds=-1", "reviewCacheSeconds"),
        ("api.tokenTtl=5", "tokenTtl"),
    ):
        r = cluster.helm("template", "tk", str(CHART), "-n", namespace, "--set", value)
        assert r.returncode != 0 and field in r.stderr, (value, r.stderr)
