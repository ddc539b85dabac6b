"""Real pods on the local node, running the project's image: pods, Jobs, Services, DNS, storage."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest


def pod(
    name: str, cluster, command: list[str], labels: dict | None = None, container: dict | None = None, **spec
) -> dict:
    """A pod of the project's image, as the cluster has it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            **spec,
            "containers": [
                {
                    "name": "main",
                    "image": cluster.image,
                    "imagePullPolicy": cluster.pull_policy,
                    "command": command,
                    **(container or {}),
                }
            ],
        },
    }


def job(name: str, cluster, script: str, **spec) -> dict:
    template = pod(name, cluster, ["python3", "-c", script], **spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": template["spec"]}},
    }


def apply(cluster, namespace: str, *objects: dict) -> None:
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def wait_job(cluster, namespace: str, name: str, timeout: int = 180) -> str:
    """Waits for the Job to complete and returns its log; a failed Job fails the test with the log."""
    r = cluster.kubectl(
        "wait", "-n", namespace, f"job/{name}", "--for=condition=Complete", f"--timeout={timeout}s", check=False
    )
    logs = cluster.kubectl("logs", "-n", namespace, f"job/{name}", check=False)
    assert r.returncode == 0, (
        f"job {name} did not complete: {r.stderr}\nlogs: {logs.stdout}{logs.stderr}\n"
        + cluster.kubectl("describe", "pods", "-n", namespace, "-l", f"job-name={name}", check=False).stdout[-3000:]
    )
    return logs.stdout


def test_a_pod_runs_the_image_as_non_root_and_kubectl_logs_reads_it(node_cluster, node_namespace):
    apply(node_cluster, node_namespace, pod("hello", node_cluster, ["sh", "-c", "id -u; thinkube --help"]))
    node_cluster.kubectl(
        "wait", "-n", node_namespace, "pod/hello", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s"
    )
    out = node_cluster.kubectl("logs", "-n", node_namespace, "hello").stdout
    assert out.splitlines()[0] == "65532" and "usage: thinkube" in out


def test_a_job_completes(node_cluster, node_namespace):
    apply(node_cluster, node_namespace, job("sum", node_cluster, "print(sum(range(10)))"))
    assert wait_job(node_cluster, node_namespace, "sum").strip() == "45"


def test_a_service_resolves_by_name_and_pods_reach_the_api_server(node_cluster, node_namespace):
    ns = node_namespace
    web = pod(
        "web", node_cluster, ["python3", "-m", "http.server", "8080", "--directory", "/etc"], labels={"app": "web"}
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    client = job(
        "client",
        node_cluster,
        f"""
import json, socket, ssl, urllib.request
print(socket.gethostbyname("web.{ns}.svc.cluster.local") == socket.gethostbyname("web"))
print(urllib.request.urlopen("http://web/hostname", timeout=10).read().decode().strip())
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={{"Authorization": "Bearer " + open(sa + "/token").read()}})
print(json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"])
""",
    )
    apply(node_cluster, ns, web, service)
    node_cluster.kubectl("wait", "-n", ns, "pod/web", "--for=condition=Ready", "--timeout=120s")
    apply(node_cluster, ns, client)
    lines = wait_job(node_cluster, ns, "client").split()
    assert lines[0] == "True"  # the short name and the FQDN resolve to the same Service IP
    assert lines[1] == "web"  # the Service routed to the web pod (its /etc/hostname)
    assert lines[2].startswith("v1.")  # the API server, through the kubernetes Service, with the pod's token


def test_claims_are_provisioned_and_shared_between_pods(node_cluster, node_namespace):
    ns = node_namespace
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "artifacts"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    volume = {
        "volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "artifacts"}}],
        "container": {"volumeMounts": [{"name": "a", "mountPath": "/mnt/a"}]},
    }
    apply(
        node_cluster,
        ns,
        claim,
        job("write", node_cluster, "open('/mnt/a/x.txt', 'w').write('written by a pod')", **volume),
    )
    wait_job(node_cluster, ns, "write")
    apply(node_cluster, ns, job("read", node_cluster, "print(open('/mnt/a/x.txt').read())", **volume))
    assert wait_job(node_cluster, ns, "read").strip() == "written by a pod"
    bound = node_cluster.kubectl_json("get", "pvc", "artifacts", "-n", ns)
    assert bound["status"]["phase"] == "Bound" and bound["spec"]["storageClassName"] == "standard"


def test_the_kubelet_refuses_anonymous_requests(node_cluster):
    node = node_cluster.kubectl_json("get", "nodes")["items"][0]
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://{ip}:10250/pods", context=ctx, timeout=10)
    assert refused.value.code == 401
