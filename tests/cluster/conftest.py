"""Fixtures of the control plane's cluster tests."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.support import control_plane


@pytest.fixture(scope="module")
def api(cluster, tmp_path_factory):
    """`thinkube api` as the chart's ServiceAccount, for a fresh namespace with users alice and bob.

    The review cache is off, so RBAC changes a test makes apply at once.
    """
    ns = f"tk-api-{uuid.uuid4().hex[:6]}"

    def kubectl(*args: str, input: str | None = None) -> str:
        return cluster.kubectl(*args, input=input).stdout

    def helm(*args: str, input: str | None = None) -> str:
        r = cluster.helm(*args)
        if r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, args, r.stdout, r.stderr)
        return r.stdout

    control_plane.prepare(kubectl, helm, ns)
    try:
        with control_plane.running(kubectl, cluster.kubeconfig, ns, tmp_path_factory.mktemp("api"), 0) as plane:
            yield plane
    finally:
        control_plane.cleanup(lambda *a, input=None: cluster.kubectl(*a, input=input, check=False).stdout, ns)
