"""Platform overhead: `python benchmarks/cluster.py [--epochs 1]` (root; the local node; ~6 min).

The same workload twice, in the same run: as a resource through the operator on the local
node (hack/cluster up --node, the chart installed with the project's image), and directly
on this host as the command the pod runs. For a CurationJob (the demo pool, no model
calls) and a 2-pod SFTRun (gpusPerNode 0, torchrun across pods, FSDP2 over gloo) it
prints `kubectl apply` -> first pod Running -> Job complete, and the ratio of the
resource's total to the host run (the baseline): what the platform adds (API, operator,
scheduling, pod start, image, network storage, DNS rendezvous).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # for tests.support

from tests.support.hack import load  # noqa: E402

CLAIM = "bench"
SELECT = 120


class Cluster:
    def __init__(self, hack):
        self.started = not hack.status_quiet()  # stopped again afterwards only then
        self.kubeconfig = str(hack.up(with_node=True))
        self.kubectl_bin, self.helm_bin, self.image = hack.tool("kubectl"), hack.tool("helm"), hack.image_ref()

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json"))


def timed_resource(k: Cluster, ns: str, manifest: dict, pods: int) -> tuple[float, float]:
    """Seconds from `kubectl apply` to `pods` pods Running, and to its Job's Complete condition."""
    name = manifest["metadata"]["name"]
    t0 = time.perf_counter()
    k.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    running = None
    while True:
        items = k.json("get", "pods", "-n", ns, "-l", f"thinkube.dev/name={name}")["items"]
        phases = [p["status"].get("phase") for p in items]
        if running is None and sum(p in ("Running", "Succeeded") for p in phases) >= pods:
            running = time.perf_counter() - t0
        status = k.json("get", manifest["kind"].lower(), name, "-n", ns).get("status", {})
        if status.get("phase") == "Succeeded":
            return running or time.perf_counter() - t0, time.perf_counter() - t0
        if status.get("phase") == "Failed":
            raise SystemExit(f"{manifest['kind']} {name} failed: {status.get('message')}")
        time.sleep(0.2)


def timed_host(cmd: list[str], env: dict | None = None) -> float:
    import os

    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - t0


def row(what: str, first_pod: float | None, total: float, baseline: float | None) -> None:
    pod = f"{first_pod:8.1f} s" if first_pod is not None else " " * 10
    ratio = f"{total / baseline:8.2f}x" if baseline else " " * 9
    print(f"{what:<44} {pod} {total:8.1f} s {ratio}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="SFT epochs over the curated set")
    a = p.parse_args()
    from thinkube.workloads.demo import cluster as demo_cluster
    from thinkube.workloads.demo import data
    from thinkube.workloads.demo.data import DataSpec

    k = Cluster(load("cluster"))
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    k.kubectl("create", "namespace", ns)
    repository, tag = k.image.rsplit(":", 1)
    subprocess.run(
        [
            k.helm_bin,
            "--kubeconfig",
            k.kubeconfig,
            "install",
            "tk",
            str(REPO / "charts" / "thinkube"),
            "-n",
            ns,
            "--wait",
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            f"operator.watchNamespaces={{{ns}}}",
            "--set",
            "operator.resyncSeconds=2",
        ],
        check=True,
        capture_output=True,
    )
    work = Path(tempfile.mkdtemp(prefix="thinkube-bench-"))
    try:
        written = data.write(DataSpec(pool_size=200, benchmark_size=24), work / "data")
        demo_cluster.upload(
            demo_cluster.connect(k.kubeconfig),
            ns,
            CLAIM,
            k.image,
            [written.pool],
            "data",
            size="2Gi",
            access_mode="ReadWriteOnce",
        )
        curate = {
            "pools": {"synthetic": "POOL"},
            "domain_column": "domain",
            "tokenizer": "tiny",
            "target_size": SELECT,
            "answer_kinds": {"synthetic": "integer"},
            "seed": 0,
        }
        train = {
            "model": "tiny",
            "epochs": a.epochs,
            "global_batch_size": 8,
            "block_size": 256,
            "precision": "auto",
            "gradient_checkpointing": False,
            "seed": 0,
        }

        print(f"{'':<44} {'first pod':>10} {'total':>10} {'ratio':>9}")
        host_curate = work / "curate.json"
        host_curate.write_text(
            json.dumps({**curate, "pools": {"synthetic": str(written.pool)}, "out": str(work / "curate")})
        )
        base = timed_host([sys.executable, "-m", "thinkube.cli", "curate", "--config", str(host_curate)])
        row("curate on the host (baseline)", None, base, None)
        spec = {
            **{_camel(key): v for key, v in curate.items()},
            "pools": {"synthetic": f"pvc://{CLAIM}/data/pool.jsonl"},
            "outputUri": f"pvc://{CLAIM}/curate",
        }
        first, total = timed_resource(
            k,
            ns,
            {"apiVersion": "thinkube.dev/v1alpha1", "kind": "CurationJob", "metadata": {"name": "cj"}, "spec": spec},
            pods=1,
        )
        row("CurationJob: apply -> pod Running -> Complete", first, total, base)

        host_train = work / "train.json"
        host_train.write_text(
            json.dumps({**train, "dataset": str(work / "curate" / "selected.jsonl"), "output": str(work / "train")})
        )
        base = timed_host(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc-per-node=2",
                "-m",
                "thinkube.cli",
                "train",
                "--config",
                str(host_train),
            ],
            env={"OMP_NUM_THREADS": "1"},
        )
        row("torchrun, 2 processes on the host (baseline)", None, base, None)
        training = {_camel(key): v for key, v in train.items() if key != "model"}
        first, total = timed_resource(
            k,
            ns,
            {
                "apiVersion": "thinkube.dev/v1alpha1",
                "kind": "SFTRun",
                "metadata": {"name": "sft"},
                "spec": {
                    "baseModel": "tiny",
                    "dataset": {"fromCurationJob": "cj"},
                    "nodes": 2,
                    "gpusPerNode": 0,
                    "outputUri": f"pvc://{CLAIM}/sft",
                    "training": training,
                },
            },
            pods=2,
        )
        row("SFTRun 2 pods: apply -> pods Running -> Complete", first, total, base)
    finally:
        subprocess.run(
            [k.kubectl_bin, "--kubeconfig", k.kubeconfig, "delete", "thinkube", "--all", "-n", ns, "--timeout=60s"],
            capture_output=True,
        )
        subprocess.run([k.helm_bin, "--kubeconfig", k.kubeconfig, "uninstall", "tk", "-n", ns], capture_output=True)
        subprocess.run(
            [k.kubectl_bin, "--kubeconfig", k.kubeconfig, "delete", "namespace", ns, "--wait=false"],
            capture_output=True,
        )
        if k.started:
            load("cluster").down(quiet=True)
    return 0


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.title() for w in rest)


if __name__ == "__main__":
    sys.exit(main())
