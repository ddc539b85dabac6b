"""The chart's control plane (`thinkube api`): its Deployment and Service, and RBAC that is
exactly what it needs, checked by rendering and by asking the real API server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.cluster.test_operator import PLURALS
from tests.cluster.test_operator_chart import CHART, by_kind, render

# (API group, resource, verb): everything the control plane's own ServiceAccount may do.
API_RIGHTS = {
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
    *(
        ("thinkube.dev", plural, verb)
        for plural in ("curationjobs", "sftruns", "budgetforcedservers", "evalsweeps")
        for verb in ("get", "list", "create", "patch", "delete")
    ),
    ("thinkube.dev", "sftruns/status", "patch"),
    ("", "events", "list"),
    ("events.k8s.io", "events", "list"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods/log", "get"),
}


def rights(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_both_deployments_render_and_the_operator_learns_where_the_api_is(cluster, namespace):
    docs = render(
        cluster,
        namespace,
        "artifacts.existingClaim=art",
        "api.port=8080",
        "api.reviewCacheSeconds=0",
        "api.audience=ours",
    )
    api, operator = by_kind(docs, "api"), by_kind(docs, "operator")
    [deployment], [service], [account] = api["Deployment"], api["Service"], api["ServiceAccount"]
    assert [d["metadata"]["name"] for d in operator["Deployment"]] == ["tk-thinkube"]
    operator_args = container(operator["Deployment"][0])["args"]
    assert f"--api-url=http://tk-thinkube-api.{namespace}.svc:8080" in operator_args
    assert "--api-audience=ours" in operator_args and "--audience=ours" in container(deployment)["args"]

    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert deployment["metadata"]["name"] == "tk-thinkube-api" and deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "tk-thinkube-api"  # not the operator's
    assert c["command"] == ["thinkube", "api"]
    assert {
        "--host=0.0.0.0",
        "--port=8080",
        "--review-cache-seconds=0",
        "--max-body-bytes=1048576",
    } <= set(c["args"])
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Results are read from the artifacts claim, mounted read-only where pvc://art/... maps to.
    assert {"name": "THINKUBE_PVC_ROOT", "value": "/mnt/thinkube/pvc"} in c["env"]
    assert {"name": "artifacts", "mountPath": "/mnt/thinkube/pvc/art", "readOnly": True} in c["volumeMounts"]
    assert {"name": "artifacts", "persistentVolumeClaim": {"claimName": "art", "readOnly": True}} in pod["volumes"]
    assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The Service selects the api pods only, never the operator's.
    selector = service["spec"]["selector"]
    assert (
        selector == deployment["spec"]["template"]["metadata"]["labels"]
        and selector["app.kubernetes.io/component"] == "api"
    )
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["port"] == 8080


def test_the_api_can_be_left_out(cluster, namespace):
    docs = render(cluster, namespace, "api.enabled=false")
    assert by_kind(docs, "api") == {}
    assert not [a for a in container(by_kind(docs)["Deployment"][0])["args"] if a.startswith("--api-url")]


def test_scheduling_values_reach_the_api_pod(cluster, namespace):
    docs = render(
        cluster,
        namespace,
        "api.nodeSelector.pool=system",
        "api.replicas=2",
        "api.service.type=LoadBalancer",
        "api.tolerations[0].key=dedicated",
        "api.tolerations[0].operator=Exists",
    )
    api = by_kind(docs, "api")
    pod = api["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "system"} and pod["tolerations"] == [
        {"key": "dedicated", "operator": "Exists"}
    ]
    assert api["Deployment"][0]["spec"]["replicas"] == 2 and api["Service"][0]["spec"]["type"] == "LoadBalancer"
    # No artifacts claim configured: /tmp is all it mounts.
    assert [m["name"] for m in container(api["Deployment"][0])["volumeMounts"]] == ["tmp"]


def test_the_api_rbac_is_exactly_what_it_needs(cluster, namespace):
    api = by_kind(render(cluster, namespace), "api")
    [role], [binding] = api["ClusterRole"], api["ClusterRoleBinding"]
    assert rights(role) == API_RIGHTS
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "tk-thinkube-api"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tk-thinkube-api", "namespace": namespace}]
    assert "Role" not in api and "RoleBinding" not in api


@contextmanager
def chart_applied(cluster, prefix: str) -> Iterator[str]:
    """The chart applied in a fresh namespace as a release named after it, so cluster-wide names are its own."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.thinkube.dev" for p in PLURALS))
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "thinkube.dev/test=true")
    try:
        rendered = cluster.helm("template", ns, str(CHART), "-n", ns, "--skip-crds")
        assert rendered.returncode == 0, rendered.stderr
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=rendered.stdout)
        yield ns
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for name in (f"{ns}-thinkube", f"{ns}-thinkube-discovery", f"{ns}-thinkube-api"):
            cluster.kubectl("delete", "clusterrole,clusterrolebinding", name, check=False)


@pytest.fixture(scope="module")
def installed(cluster):
    with chart_applied(cluster, "tk-apichart") as ns:
        yield ns, f"system:serviceaccount:{ns}:{ns}-thinkube-api"


@pytest.mark.parametrize(
    "action, allowed",
    [
        (("create", "tokenreviews.authentication.k8s.io"), True),
        (("create", "subjectaccessreviews.authorization.k8s.io"), True),
        (("create", "sftruns.thinkube.dev", "-n", "team-a"), True),
        (("delete", "evalsweeps.thinkube.dev", "-n", "team-a"), True),
        (("patch", "sftruns.thinkube.dev", "--subresource=status", "-n", "team-a"), True),
        (("get", "pods", "--subresource=log", "-n", "team-a"), True),
        (("list", "events.events.k8s.io", "-n", "team-a"), True),
        (("get", "secrets", "-n", "team-a"), False),
        (("list", "secrets", "-A"), False),
        (("create", "pods", "-n", "team-a"), False),
        (("impersonate", "users"), False),
        (("impersonate", "serviceaccounts", "-n", "team-a"), False),
        (("update", "sftruns.thinkube.dev", "-n", "team-a"), False),
        (("patch", "curationjobs.thinkube.dev", "--subresource=status", "-n", "team-a"), False),
        (("create", "deployments.apps", "-n", "team-a"), False),
        (("create", "events", "-n", "team-a"), False),
    ],
)
def test_the_api_service_account_may_do_only_that(cluster, installed, action, allowed):
    ns, account = installed
    r = cluster.kubectl("auth", "can-i", *action, f"--as={account}", check=False)
    assert r.stdout.strip() == ("yes" if allowed else "no"), (action, r.stdout, r.stderr)
