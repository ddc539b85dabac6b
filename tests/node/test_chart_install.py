"""`helm install` of the chart on the real node: the operator and the control plane run as pods;
the operator reconciles, and the control plane serves a run and its real pod's logs."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from tests.support.browser import log_text, shot, sign_in
from tests.support.control_plane import user_role
from tests.support.wait import wait_for
from thinkube.api.server.dashboard import LOG_TAIL

PERMISSION_ERRORS = ("forbidden", "403", "unauthorized", "401")


def test_the_operator_runs_from_the_chart_reconciles_and_uninstalls_cleanly(node_cluster, node_namespace, new_page):
    k, ns = node_cluster, node_namespace
    release = f"tk{uuid.uuid4().hex[:6]}"
    k.install_chart(release, ns, "operator.resyncSeconds=2", "artifacts.create=true", "artifacts.size=1Gi")
    selector = f"app.kubernetes.io/instance={release}"
    try:
        pod = k.kubectl_json("get", "pods", "-n", ns, "-l", f"{selector},app.kubernetes.io/component=operator")[
            "items"
        ][0]
        name = pod["metadata"]["name"]
        assert all(c["ready"] for c in pod["status"]["containerStatuses"])
        # The chart's security context holds in the running container: uid 65532, read-only root.
        assert k.kubectl("exec", "-n", ns, name, "--", "id", "-u").stdout.strip() == "65532"
        assert k.kubectl("exec", "-n", ns, name, "--", "touch", "/opt/x", check=False).returncode != 0

        claim = f"{release}-thinkube-artifacts"
        k.kubectl(
            "apply",
            "-n",
            ns,
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "thinkube.dev/v1alpha1",
                    "kind": "CurationJob",
                    "metadata": {"name": "cj"},
                    "spec": {"pools": {"p": f"pvc://{claim}/pool.jsonl"}, "domainColumn": "domain"},
                }
            ),
        )
        job = wait_for(
            lambda: k.kubectl_json("get", "jobs", "-n", ns, "-l", "thinkube.dev/name=cj")["items"],
            "the operator pod to create the CurationJob's Job",
            timeout=120,
        )[0]
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == k.image
        # The default output went to the chart-created artifacts claim.
        status = wait_for(
            lambda: (
                k.kubectl_json("get", "curationjob", "cj", "-n", ns).get("status", {}).get("phase")
                and k.kubectl_json("get", "curationjob", "cj", "-n", ns)["status"]
            ),
            "the CurationJob's status",
            timeout=60,
        )
        assert status["observedGeneration"] == 1 and status["outputUri"].startswith(f"pvc://{claim}/")
        logs = k.kubectl("logs", "-n", ns, name).stdout
        assert not [line for line in logs.splitlines() if any(e in line.lower() for e in PERMISSION_ERRORS)], logs
        check_control_plane(k, ns, selector, new_page)
        # Resources carry the operator's finalizer: delete them while it still runs.
        k.kubectl("delete", "curationjob", "cj", "-n", ns, "--timeout=60s")
    finally:
        r = k.helm("uninstall", release, "-n", ns, "--wait", "--timeout", "120s")
    assert r.returncode == 0, r.stderr

    def left() -> list[str]:
        return (
            k.kubectl(
                "get",
                "deployments,replicasets,pods,serviceaccounts,roles,rolebindings",
                "-n",
                ns,
                "-l",
                selector,
                "-o",
                "name",
            ).stdout.split()
            + k.kubectl("get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name").stdout.split()
        )

    wait_for(lambda: not left(), f"every object of the release to be gone (left: {left()})", timeout=60)
    # Claims the chart made hold users' data: kept on purpose (helm.sh/resource-policy: keep).
    assert k.kubectl("get", "pvc", f"{release}-thinkube-artifacts", "-n", ns, check=False).returncode == 0


def unprefixed(text: str) -> set[str]:
    """Log lines without the `[pod] ` prefix the control plane puts before each pod's lines."""
    return {re.sub(r"^\[[^\]\s]+\] ", "", line) for line in text.splitlines()}


def check_control_plane(k, ns: str, selector: str, new_page) -> None:
    """The chart's control plane pod, called from this host with a researcher's token: it lists
    the CurationJob and serves its failed pod's log (the pool file does not exist), as kubectl does,
    to the client and to the dashboard's log panel in a browser."""
    api = k.kubectl_json("get", "pods", "-n", ns, "-l", f"{selector},app.kubernetes.io/component=api")["items"][0]
    assert all(c["ready"] for c in api["status"]["containerStatuses"])  # /readyz: it reaches the API server
    assert k.kubectl("exec", "-n", ns, api["metadata"]["name"], "--", "id", "-u").stdout.strip() == "65532"
    k.kubectl("create", "serviceaccount", "researcher", "-n", ns)
    k.kubectl("apply", "-n", ns, "-f", "-", input=user_role("researcher"))
    token = k.kubectl("create", "token", "researcher", "-n", ns).stdout.strip()
    url = f"http://{api['status']['podIP']}:8000"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        listed = c.get(f"/v1/namespaces/{ns}/curationjobs").json()
        assert [o["metadata"]["name"] for o in listed["items"]] == ["cj"]
        failed = wait_for(
            lambda: [
                p["metadata"]["name"]
                for p in k.kubectl_json("get", "pods", "-n", ns, "-l", "thinkube.dev/name=cj")["items"]
                if p["status"].get("phase") in ("Failed", "Succeeded")
            ],
            "a finished pod of the CurationJob",
            timeout=180,
        )[0]
        expected = k.kubectl("logs", "-n", ns, failed).stdout.splitlines()
        got = c.get(f"/v1/namespaces/{ns}/curationjobs/cj/logs")
        assert got.status_code == 200 and expected, got.text
        assert set(expected) <= unprefixed(got.text), (expected[-5:], got.text[-2000:])
        # Following a finished pod streams its log and ends with it.
        followed = c.get(f"/v1/namespaces/{ns}/curationjobs/cj/logs", params={"follow": "true"}, timeout=120)
        assert followed.status_code == 200 and expected[-1] in followed.text
    page = new_page()
    assert sign_in(page, url, ns, token).status == 303
    page.goto(f"{url}/ui/namespaces/{ns}/curationjobs/cj")
    shown = log_text(page, timeout_s=120)
    assert shown.rstrip().endswith("[end of logs]") and "error" not in (page.get_attribute("#log", "class") or ""), (
        shown
    )
    assert set(expected[-LOG_TAIL:]) <= unprefixed(shown), (expected[-5:], shown[-2000:])
    shot(page, "node-curationjob")
    assert httpx.get(f"{url}/v1/namespaces/{ns}/curationjobs", timeout=30).status_code == 401
