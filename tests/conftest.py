"""Shared fixtures. Tiers: unit (default), `cluster` (real local API server), `e2e`, and `node`
(a real node running the project's image; these run last, because they restart the cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.hack import load
from tests.support.paths import CHART
from thinkube.constants import (
    ENV_ALLOW_FOREIGN_CLUSTER,
    ENV_IMAGE,
    ENV_IMAGE_PULL_POLICY,
    ENV_REQUIRE_NODE,
    LOCAL_CONTEXT,
)

# The browser fixtures (Playwright over Debian's chromium) for the cluster and node tiers.
pytest_plugins = ["tests.support.browser"]


def _hack_cluster():
    return load("cluster")


def _current_context(kubeconfig: Path) -> str | None:
    try:  # hack/cluster writes JSON; a user's kubeconfig may be YAML
        import yaml

        return yaml.safe_load(kubeconfig.read_text()).get("current-context")
    except Exception:
        return None


class Cluster:
    """A reachable API server and the kubectl/helm that talk to it (and, with a node, the image it runs)."""

    def __init__(self, kubeconfig: Path, hack, image: str | None = None, pull_policy: str = "Never"):
        self.kubeconfig = kubeconfig
        self._hack = hack
        self.image = image
        self.pull_policy = pull_policy  # Never: the image was imported into the node, not pulled

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self._hack.tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self._hack.tool("helm"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    def install_chart(self, release: str, namespace: str, *values: str) -> None:
        """`helm install --wait` of the chart with this cluster's image; `values` are extra `--set` pairs."""
        repository, tag = self.image.rsplit(":", 1)
        image = [f"image.repository={repository}", f"image.tag={tag}", f"image.pullPolicy={self.pull_policy}"]
        sets = [arg for value in (*image, *values) for arg in ("--set", value)]
        r = self.helm("install", release, str(CHART), "-n", namespace, "--wait", "--timeout", "180s", *sets)
        assert r.returncode == 0, r.stdout + r.stderr

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The local control plane, started for this session unless already up.

    With KUBECONFIG set, tests use that cluster only if its current context is the one
    hack/cluster makes, or if THINKUBE_ALLOW_FOREIGN_CLUSTER=1: tests create and delete
    namespaces, which must never happen on a real cluster by accident.
    """
    hack = _hack_cluster()
    given = os.environ.get("KUBECONFIG")
    if given:
        ctx = _current_context(Path(given))
        if ctx != LOCAL_CONTEXT and os.environ.get(ENV_ALLOW_FOREIGN_CLUSTER) != "1":
            pytest.exit(
                f"refusing to run cluster tests against KUBECONFIG={given} (context {ctx!r}, "
                f"not {LOCAL_CONTEXT!r}); set {ENV_ALLOW_FOREIGN_CLUSTER}=1 to allow it",
                returncode=4,
            )
        yield Cluster(Path(given), hack)
        return
    we_start = not hack.status_quiet()
    try:
        kubeconfig = hack.up()
    except (SystemExit, subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"local control plane unavailable: {e}")
    try:
        yield Cluster(kubeconfig, hack)
    finally:
        if we_start:
            hack.down(quiet=True)


@pytest.fixture(scope="session")
def node_cluster() -> Cluster:
    """A cluster whose nodes run the project's image.

    By default the local cluster with a real node (containerd, kubelet, kube-proxy, CoreDNS,
    storage) and the image imported; restarted that way if the control plane alone is up.
    With THINKUBE_ALLOW_FOREIGN_CLUSTER=1, KUBECONFIG's cluster instead (a real one, or kind:
    hack/kind-up), running THINKUBE_IMAGE with THINKUBE_IMAGE_PULL_POLICY (IfNotPresent).
    """
    hack = _hack_cluster()
    given = os.environ.get("KUBECONFIG")
    if given and os.environ.get(ENV_ALLOW_FOREIGN_CLUSTER) == "1":
        image = os.environ.get(ENV_IMAGE)
        if not image:
            pytest.exit(
                f"KUBECONFIG={given} with {ENV_ALLOW_FOREIGN_CLUSTER}=1 needs {ENV_IMAGE}: the image its "
                f"nodes can run (python hack/image.py build, pushed or loaded)",
                returncode=4,
            )
        yield Cluster(Path(given), hack, image, os.environ.get(ENV_IMAGE_PULL_POLICY, "IfNotPresent"))
        return
    try:
        kubeconfig = hack.up(with_node=True)
    except (SystemExit, subprocess.CalledProcessError, OSError) as e:
        if os.environ.get(ENV_REQUIRE_NODE) == "1":  # CI: a node that cannot start is a failure
            pytest.fail(f"local node unavailable: {e}")
        pytest.skip(f"local node unavailable: {e}")
    try:
        yield Cluster(kubeconfig, hack, hack.image_ref())
    finally:
        hack.down(quiet=True)


def _namespace(cluster: Cluster, request):
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"tk-{base}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "thinkube.dev/test=true")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def node_namespace(node_cluster: Cluster, request) -> str:
    yield from _namespace(node_cluster, request)


@pytest.fixture
def namespace(cluster: Cluster, request) -> str:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    yield from _namespace(cluster, request)


def pytest_collection_modifyitems(config, items):
    # Folder decides the tier, so a test can't silently land in the wrong one.
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "cluster" in parts:
            item.add_marker(pytest.mark.cluster)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
        if "node" in parts:
            item.add_marker(pytest.mark.node)
    # The node tier restarts the local cluster with a node: after everything that shares it.
    items.sort(key=lambda item: "node" in Path(str(item.fspath)).parts)
