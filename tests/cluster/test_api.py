"""The control plane's security and contract on the real API server: every endpoint with a
caller who may and one who may not, tokens for the wrong audience, error shapes, trainer
progress reports, health, metrics and logs. The control plane runs as the chart's api
ServiceAccount, so the chart's RBAC is all it has (fixture in conftest.py)."""

from __future__ import annotations

import json
import socket
import uuid

import httpx

from tests.cluster.test_api_client import set_status, sft
from tests.support.control_plane import CLAIM
from thinkube.constants import LABEL_KIND, LABEL_NAME, PROGRESS_AUDIENCE

PROBLEM = "application/problem+json"


def http(api, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api.url, headers=headers, timeout=30)


def problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "field"} and body["status"] == status
    return body


def _sft_body(name: str) -> dict:
    return sft(name).model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"})


# Each endpoint as (method, path template, body, what RBAC must allow), for the matrix below.
def _endpoints(ns: str, name: str) -> list[tuple[str, str, dict | None, str]]:
    base = f"/v1/namespaces/{ns}/sftruns"
    return [
        ("POST", f"{base}?dryRun=All", _sft_body(f"{name}-new"), "create sftruns.thinkube.dev"),
        ("GET", base, None, "list sftruns.thinkube.dev"),
        ("GET", f"{base}/{name}", None, "get sftruns.thinkube.dev"),
        ("PATCH", f"{base}/{name}?dryRun=All", {"spec": {"suspend": True}}, "patch sftruns.thinkube.dev"),
        ("DELETE", f"{base}/{name}?dryRun=All", None, "delete sftruns.thinkube.dev"),
        ("GET", f"{base}/{name}/events", None, "get sftruns.thinkube.dev"),
        ("GET", f"{base}/{name}/logs", None, "get sftruns.thinkube.dev"),
        ("GET", f"{base}/{name}/results", None, "get sftruns.thinkube.dev"),
    ]


def _send(c: httpx.Client, method: str, path: str, body: dict | None) -> httpx.Response:
    headers = {"Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"}
    return c.request(method, path, content=json.dumps(body) if body is not None else None, headers=headers)


def test_every_endpoint_lets_the_allowed_caller_through_and_refuses_the_others(cluster, api):
    name = "matrix"
    with http(api, api.token) as c:
        assert c.post(f"/v1/namespaces/{api.namespace}/sftruns", json=_sft_body(name)).status_code == 201
    other = f"{api.namespace}-x"
    cluster.kubectl("create", "namespace", other)
    try:
        for method, path, body, needs in _endpoints(api.namespace, name):
            with http(api, api.token) as c:
                r = _send(c, method, path, body)
            # Allowed through: the answer is the endpoint's own (no pods or results yet: 404 saying so).
            assert r.status_code in (200, 201, 404), (method, path, r.text)
            if r.status_code == 404:
                assert problem(r, 404)["type"].endswith(("no-pods", "no-results")), (method, path)
            with http(api, api.outsider_token) as c:
                refused = problem(_send(c, method, path, body), 403)
            assert refused["detail"] == f"not allowed to {needs} in namespace {api.namespace}", (method, path)
            # The same caller, another namespace: RBAC there says no.
            elsewhere = path.replace(f"/namespaces/{api.namespace}/", f"/namespaces/{other}/")
            with http(api, api.token) as c:
                assert problem(_send(c, method, elsewhere, body), 403)["detail"].endswith(f"in namespace {other}")
            for token in (None, "not-a-token"):
                with http(api, token) as c:
                    r = _send(c, method, path, body)
                assert problem(r, 401) and r.headers["www-authenticate"].startswith("Bearer")
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_logs_need_pods_log_on_top_of_the_kind(cluster, api):
    """A caller who may read the run but not pods/log is refused the logs, naming pods/log."""
    ns = api.namespace
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", ns)
    cluster.kubectl("create", "role", "viewer", "-n", ns, "--verb=get,list", "--resource=sftruns.thinkube.dev")
    cluster.kubectl("create", "rolebinding", "viewer", "-n", ns, "--role=viewer", f"--serviceaccount={ns}:viewer")
    token = cluster.kubectl("create", "token", "viewer", "-n", ns).stdout.strip()
    with http(api, api.token) as c:
        assert c.post(f"/v1/namespaces/{ns}/sftruns", json=_sft_body("viewed")).status_code == 201
    with http(api, token) as c:
        assert c.get(f"/v1/namespaces/{ns}/sftruns/viewed").status_code == 200
        body = problem(c.get(f"/v1/namespaces/{ns}/sftruns/viewed/logs"), 403)
        assert body["detail"] == f"not allowed to get pods/log in namespace {ns}"
        assert problem(c.post(f"/v1/namespaces/{ns}/sftruns", json=_sft_body("nope")), 403)


def test_a_token_for_another_audience_is_not_a_login(cluster, api):
    """A trainer's progress token (audience thinkube-api) must not work as a user's token."""
    token = cluster.kubectl("create", "token", "alice", "-n", api.namespace, f"--audience={PROGRESS_AUDIENCE}")
    with http(api, token.stdout.strip()) as c:
        assert problem(c.get(f"/v1/namespaces/{api.namespace}/sftruns"), 401)


def test_error_shapes_name_the_field(cluster, api):
    ns = api.namespace
    base = f"/v1/namespaces/{ns}/sftruns"
    with http(api, api.token) as c:
        bad = _sft_body("shapes")
        bad["spec"]["training"] = {"epochs": "five"}
        assert problem(c.post(base, json=bad), 422)["field"] == "spec.training.epochs"
        extra = {**_sft_body("shapes"), "sepc": {}}
        assert problem(c.post(base, json=extra), 422)["field"] == "sepc"
        assert problem(c.post(base, content=b"{not json", headers={"Content-Type": "application/json"}), 400)
        assert problem(c.post(base, content=b'{"a": "\xff"}', headers={"Content-Type": "application/json"}), 400)
        nameless = _sft_body("x")
        nameless["metadata"] = {}
        assert "metadata.name" in problem(c.post(base, json=nameless), 422)["detail"]
        assert problem(c.get(f"/v1/namespaces/{ns}/sftruns/Bad_Name"), 422)["field"] == "name"
        assert problem(c.get(f"/v1/namespaces/{ns}/pods"), 404)
        # What only the API server checks (a CEL transition rule) comes back with its field.
        assert c.post(base, json=_sft_body("shapes")).status_code == 201
        set_status(cluster, api, "sftruns", "shapes", {"jobName": "shapes-train-a0"})
        patched = c.patch(
            f"{base}/shapes",
            content=json.dumps({"spec": {"baseModel": "hf://Qwen/Qwen2.5-0.5B"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        body = problem(patched, 422)
        assert body["field"] == "spec.baseModel" and "immutable" in body["detail"]
        for forbidden in ({"status": {"phase": "Succeeded"}}, {"metadata": {"name": "other"}}):
            r = c.patch(f"{base}/shapes", content=json.dumps(forbidden), headers={"Content-Type": "application/json"})
            assert problem(r, 422)["field"] in ("status", "metadata")


def test_bodies_over_the_limit_are_refused_even_when_chunked(api):
    limit = 1024 * 1024
    host, port = api.url.removeprefix("http://").split(":")
    with http(api, api.token) as c:
        assert problem(c.post(f"/v1/namespaces/{api.namespace}/sftruns", content=b" " * (limit + 1)), 413)

    def chunks():
        for _ in range(40):
            yield b" " * 65536  # 2.5 MiB with no Content-Length

    with http(api, api.token) as c:
        r = c.post(
            f"/v1/namespaces/{api.namespace}/sftruns", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert problem(r, 413)["detail"] == f"request body over {limit} bytes"
    with socket.create_connection((host, int(port))) as s:  # still serving
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200")


def _trainer_pod(cluster, ns: str, pod: str, run: str) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod, "labels": {LABEL_KIND: "SFTRun", LABEL_NAME: run}},
        "spec": {"containers": [{"name": "trainer", "image": "thinkube:test"}]},
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(manifest))
    token = cluster.kubectl(
        "create",
        "token",
        "default",
        "-n",
        ns,
        f"--audience={PROGRESS_AUDIENCE}",
        "--bound-object-kind=Pod",
        f"--bound-object-name={pod}",
    )
    return token.stdout.strip()


def test_trainer_progress_reaches_status_and_kubectl_get(cluster, api):
    ns = api.namespace
    from tests.support.wait import wait_for

    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, "default SA")
    with http(api, api.token) as c:
        for run in ("trained", "neighbour"):
            assert c.post(f"/v1/namespaces/{ns}/sftruns", json=_sft_body(run)).status_code == 201
    token = _trainer_pod(cluster, ns, "trained-r0", "trained")
    other = _trainer_pod(cluster, ns, "neighbour-r0", "neighbour")
    report = {"step": 7, "totalSteps": 20, "loss": 0.8125, "tokensPerSecond": 1234.5, "etaSeconds": 90.0}
    report["updatedAt"] = "2026-12-06T10:00:00Z"
    path = f"/v1/namespaces/{ns}/sftruns/trained/progress"
    with http(api, token) as c:
        assert c.post(path, json=report).status_code == 204
        # Strict: a step sent as text is a trainer bug, refused with its field.
        assert problem(c.post(path, json={**report, "step": "8"}), 422)["field"] == "step"
        # This pod's token cannot write another run's progress.
        assert problem(c.post(f"/v1/namespaces/{ns}/sftruns/neighbour/progress", json=report), 403)
    with http(api, other) as c:
        assert problem(c.post(path, json=report), 403)
    with http(api, api.token) as c:  # a user's token has the wrong audience
        assert problem(c.post(path, json=report), 401)
    status = cluster.kubectl_json("get", "sftrun", "trained", "-n", ns)["status"]["progress"]
    assert (status["step"], status["totalSteps"], status["loss"]) == (7, 20, 0.8125)
    # What `kubectl get sft` shows: the server-side table's columns.
    client = cluster.api_client()
    req = client.param_serialize(
        "GET",
        f"/apis/thinkube.dev/v1alpha1/namespaces/{ns}/sftruns/trained",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    table = json.loads(client.call_api(*req).read())
    columns = [c["name"] for c in table["columnDefinitions"]]
    cells = table["rows"][0]["cells"]
    assert (cells[columns.index("Step")], cells[columns.index("Loss")]) == (7, 0.8125)


def test_results_stay_inside_the_run_folder(cluster, api):
    ns = api.namespace
    out = f"sftruns/{ns}/curve"
    folder = api.pvc_root / CLAIM / out
    folder.mkdir(parents=True)
    rows = [{"step": s, "total_steps": 4, "loss": 2.0 / s, "tokens_per_s": 100.0, "epoch": s / 4} for s in (1, 2, 3, 4)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "model.safetensors").write_bytes(b"weights")
    (api.pvc_root / CLAIM / "secret.json").write_text("{}")
    with http(api, api.token) as c:
        assert c.post(f"/v1/namespaces/{ns}/sftruns", json=_sft_body("curve")).status_code == 201
        set_status(cluster, api, "sftruns", "curve", {"outputUri": f"pvc://{CLAIM}/{out}"})
        index = c.get(f"/v1/namespaces/{ns}/sftruns/curve/results").json()
        assert [f["name"] for f in index["files"]] == ["metrics.jsonl", "loss_curve.png"]
        assert index["summary"]["lastLoss"] == 0.5 and index["summary"]["steps"] == 4
        png = c.get(f"/v1/namespaces/{ns}/sftruns/curve/results/loss_curve.png")
        assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
        for sneaky in ("../secret.json", "..%2Fsecret.json", "model.safetensors", "/etc/hostname"):
            assert c.get(f"/v1/namespaces/{ns}/sftruns/curve/results/{sneaky}").status_code == 404, sneaky
        # An output outside the PVC root (or on a node's disk) is never read.
        for uri in ("pvc://art/../../../etc", "file:///etc"):
            set_status(cluster, api, "sftruns", "curve", {"outputUri": uri})
            assert problem(c.get(f"/v1/namespaces/{ns}/sftruns/curve/results"), 404)["type"].endswith("no-results")


def test_health_metrics_and_request_ids(api):
    with http(api, None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200
        rid = uuid.uuid4().hex
        r = c.get(f"/v1/namespaces/{api.namespace}/sftruns", headers={"X-Request-ID": rid})
        assert r.status_code == 401 and r.headers["x-request-id"] == rid
        assert c.get("/healthz").headers["x-request-id"]  # made up when the caller sends none
    with http(api, api.token) as c:
        for _ in range(3):
            assert c.get(f"/v1/namespaces/{api.namespace}/sftruns").status_code == 200
        text = c.get("/metrics").text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("thinkube_api_requests_total{")
        and 'route="/v1/namespaces/{namespace}/sftruns"' in ln
        and 'status="200"' in ln
        and 'method="GET"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "thinkube_api_request_seconds_bucket" in text and "thinkube_api_reviews_total" in text
    log = api.log_path.read_text()
    assert rid in log and api.token not in log
