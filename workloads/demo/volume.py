"""Files into and out of a PVC through a short-lived helper pod: what `kubectl cp` does, without kubectl.

The demo's data goes into the claim before the resources read it, and the stages' reports
come back out of it afterwards. Files travel as a base64 tar over the pod's exec stream
(stdin carries its length first: the exec protocol cannot close stdin alone).
"""

from __future__ import annotations

import base64
import io
import tarfile
import time
import uuid
from pathlib import Path

from kubernetes import client
from kubernetes.stream import stream

from thinkube.constants import LABEL_ROLE

MOUNT = "/data"
READY_TIMEOUT_S = 300  # the first pod of a large image on a node waits for its unpacking
UNSCHEDULABLE_S = 15  # the scheduler has said no for this long: no node can take it
# Run with `python3 -c` in the helper pod; argv[1] is the folder under the claim.
_UNPACK = (
    "import base64, io, sys, tarfile; n = int(sys.stdin.readline()); "
    "tarfile.open(fileobj=io.BytesIO(base64.b64decode(sys.stdin.read(n)))).extractall(sys.argv[1])"
)
_PACK = (
    "import base64, io, sys, tarfile, fnmatch, os; buf = io.BytesIO(); t = tarfile.open(fileobj=buf, mode='w'); "
    "[t.add(os.path.join(d, f), os.path.relpath(os.path.join(d, f), sys.argv[1])) "
    "for d, _, fs in os.walk(sys.argv[1]) for f in fs if any(fnmatch.fnmatch(f, p) for p in sys.argv[2:])]; "
    "t.close(); sys.stdout.write(base64.b64encode(buf.getvalue()).decode())"
)


def ensure_claim(api: client.ApiClient, namespace: str, claim: str, size: str, access_mode: str) -> None:
    core = client.CoreV1Api(api)
    try:
        core.read_namespaced_persistent_volume_claim(claim, namespace)
        return
    except client.ApiException as e:
        if e.status != 404:
            raise
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim},
        "spec": {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}},
    }
    # The client's types say V1PersistentVolumeClaim; it sends a dict body as it is.
    core.create_namespaced_persistent_volume_claim(namespace, body)  # type: ignore[arg-type]


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    assert pod.status is not None  # the API server returns every pod with a status (Pending at first)
    return pod.status


def unscheduled(status: client.V1PodStatus) -> client.V1PodCondition | None:
    """The scheduler's PodScheduled=False condition: why no node takes the pod."""
    return next((c for c in status.conditions or [] if c.type == "PodScheduled" and c.status == "False"), None)


class FileCopyError(RuntimeError):
    """The helper pod did not start or the copy failed; the message says why."""


class Helper:
    """A pod of `image` with the claim at /data, for the length of a `with` block."""

    def __init__(self, api: client.ApiClient, namespace: str, claim: str, image: str):
        self.core, self.namespace, self.claim, self.image = client.CoreV1Api(api), namespace, claim, image
        self.name = f"{claim}-files-{uuid.uuid4().hex[:6]}"

    def __enter__(self) -> "Helper":
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "labels": {LABEL_ROLE: "files"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": self.claim}}],
                "containers": [
                    {
                        "name": "files",
                        "image": self.image,
                        "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "data", "mountPath": MOUNT}],
                    }
                ],
            },
        }
        # The client's types say V1Pod; it sends a dict body as it is.
        self.core.create_namespaced_pod(self.namespace, body)  # type: ignore[arg-type]
        try:
            self._wait_running()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_running(self) -> None:
        start = time.monotonic()
        while (status := pod_status(self.core.read_namespaced_pod(self.name, self.namespace))).phase != "Running":
            waited = time.monotonic() - start
            refused = unscheduled(status)
            why = (
                f"{refused.reason}: {refused.message}"
                if refused and waited > UNSCHEDULABLE_S
                else f"{status.phase} after {waited:.0f} s"
                if waited > READY_TIMEOUT_S or status.phase in ("Failed", "Succeeded")
                else None
            )
            if why:
                raise FileCopyError(
                    f"the pod that copies files for claim {self.claim} ({self.name}, image "
                    f"{self.image}) does not run: {why}; kubectl describe pod {self.name} "
                    f"-n {self.namespace}"
                )
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        try:
            self.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)
        except client.ApiException as e:
            if e.status != 404:
                raise

    def _exec(self, command: list[str], **kw):
        return stream(
            self.core.connect_get_namespaced_pod_exec, self.name, self.namespace, command=command, tty=False, **kw
        )

    def put(self, files: list[Path], folder: str) -> None:
        """Copies the files into <claim>/<folder>/."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for f in files:
                tar.add(f, arcname=f.name)
        data = base64.b64encode(buf.getvalue()).decode()
        ws = self._exec(
            ["python3", "-c", _UNPACK, f"{MOUNT}/{folder}"],
            stdin=True,
            stdout=True,
            stderr=True,
            _preload_content=False,
        )
        ws.write_stdin(f"{len(data)}\n{data}")
        ws.run_forever(timeout=120)
        errors = ws.read_stderr()
        code = ws.returncode
        ws.close()
        if code != 0:
            raise FileCopyError(f"copying into {self.claim}/{folder} failed: {errors}")

    def get(self, folder: str, dest: Path, patterns: tuple[str, ...]) -> list[Path]:
        """Copies the files under <claim>/<folder> whose names match `patterns` into dest; returns them."""
        # stdout only: a preloaded exec stream mixes stderr into what it returns.
        out = self._exec(
            ["python3", "-c", _PACK, f"{MOUNT}/{folder}", *patterns], stdin=False, stdout=True, stderr=False
        )
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(out))) as tar:
            tar.extractall(dest, filter="data")
            return [dest / m.name for m in tar.getmembers() if m.isfile()]
