"""Node benchmark: `python benchmarks/node.py [--pods 5] [--cold]` (root; ~3 min warm, +7 min with --cold).

What the local node costs, each against a baseline measured in the same run:

1. Image build (hack/image.py). Warm: an unchanged tree (the content tag already exists),
   and a source edit (a new file under workloads/, so only the source layer rebuilds).
   With --cold, also a build with no layer cache at all, the baseline of both warm cases.
   Image sizes (CPU variant; the base made with debootstrap).
2. Node start: `hack/cluster.py up --node` from a stopped cluster with every part built,
   against `up` of the control plane alone (the baseline).
3. `kubectl apply` -> Running for a bare pod of the image, median of --pods, against the
   same image started straight on containerd with `ctr run` (the baseline): the ratio is
   what Kubernetes adds (API, scheduler, kubelet, pod sandbox, CNI).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # for tests.support

from tests.support.hack import load  # noqa: E402


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def row(what: str, seconds: float, baseline: float | None = None) -> None:
    ratio = f"{seconds / baseline:8.2f}x" if baseline else " " * 9
    print(f"{what:<58} {seconds:8.1f} s {ratio}", flush=True)


def bench_image(image, cold: bool) -> str:
    print("\n## image build (hack/image.py, builder: %s)" % image.builder())
    cold_s = None
    if cold:
        image.run(
            "buildah", "rmi", "--all", "--force", capture_output=True
        ) if image.builder() == "buildah" else image.run(
            "docker", "builder", "prune", "--all", "--force", capture_output=True
        )
        cold_s, ref = timed(image.build)
        row("cold: no layer cache, base made with debootstrap", cold_s)
    ref_s, ref = timed(image.build)
    row("warm: unchanged tree (content tag found)", ref_s, cold_s)
    tool = image.builder()
    print(
        f"sizes: {ref} {image.size_mb(tool, ref):.0f} MB; base {image.LOCAL_BASE} "
        f"{image.size_mb(tool, image.LOCAL_BASE):.0f} MB"
    )
    marker = REPO / "workloads" / f"_bench_{uuid.uuid4().hex[:8]}.py"
    marker.write_text("# a source edit for benchmarks/node.py\n")
    try:
        edit_s, _ = timed(image.build)
    finally:
        marker.unlink()
    row("warm: one source file added (only the source layer rebuilds)", edit_s, cold_s)
    image.build()  # the unchanged tree again (each build replaces the one before)
    return ref


def bench_start(cluster) -> None:
    print("\n## cluster start (every part built)")
    cluster.down(quiet=True)
    plane_s, _ = timed(cluster.up)
    cluster.down(quiet=True)
    node_s, _ = timed(lambda: cluster.up(with_node=True))
    row("control plane alone (baseline)", plane_s)
    row("control plane + node (containerd, kubelet, proxy, DNS, image)", node_s, plane_s)


def bench_pods(cluster, node, ref: str, count: int) -> None:
    print(f"\n## bare pod of the image, median of {count}")
    kubectl = [cluster.tool("kubectl"), "--kubeconfig", str(cluster.STATE / "kubeconfig")]
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
    k8s, direct = [], []
    try:
        for i in range(count):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p{i}"},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {"name": "main", "image": ref, "imagePullPolicy": "Never", "command": ["sleep", "60"]}
                    ],
                },
            }
            t0 = time.perf_counter()
            subprocess.run(
                [*kubectl, "apply", "-n", ns, "-f", "-"],
                input=json.dumps(pod),
                text=True,
                check=True,
                capture_output=True,
            )
            while (
                subprocess.run(
                    [*kubectl, "get", "pod", f"p{i}", "-n", ns, "-o", "jsonpath={.status.phase}"],
                    capture_output=True,
                    text=True,
                ).stdout
                != "Running"
            ):
                time.sleep(0.05)
            k8s.append(time.perf_counter() - t0)
            name = f"bench-{uuid.uuid4().hex[:8]}"
            t0 = time.perf_counter()
            subprocess.run(node.ctr("run", "--rm", ref, name, "true"), check=True, capture_output=True)
            direct.append(time.perf_counter() - t0)
    finally:
        subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)
    base = statistics.median(direct)
    row("ctr run of the image, start to exit (baseline)", base)
    row("kubectl apply -> pod Running", statistics.median(k8s), base)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=5)
    p.add_argument("--cold", action="store_true", help="also time a build with no layer cache (~7 min)")
    a = p.parse_args()
    image, cluster = load("image"), load("cluster")
    ref = bench_image(image, a.cold)
    bench_start(cluster)
    try:
        bench_pods(cluster, load("node"), cluster.image_ref() or ref, a.pods)
    finally:
        cluster.down(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
