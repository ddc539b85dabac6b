"""The reduced demo the end-to-end and node tests run: the same stages at sizes that finish in minutes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SMALL = ["--pool-size", "200", "--benchmark-size", "24", "--select", "120", "--epochs", "2", "--budgets", "4,40",
         "--num-ignore", "1"]  # fmt: skip


def run_on_cluster(
    cluster, namespace: str, out: Path, *extra: str, image: str, timeout_s: int
) -> subprocess.CompletedProcess:
    """`thinkube demo --on-cluster` against `cluster`, waiting at most `timeout_s` for the chain."""
    cmd = [sys.executable, "-m", "thinkube.cli", "demo", "--on-cluster", *extra, "--out", str(out)]
    cmd += ["--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, "--image", image]
    cmd += ["--timeout", str(timeout_s)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 600)
