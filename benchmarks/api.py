"""Control plane overhead: `python benchmarks/api.py [--requests 300]` (the local control plane; ~3 min).

The same requests from the same client (httpx, keep-alive, CONCURRENCY in flight), in the
same run: directly against the Kubernetes API with the user's token (the baseline), and
through `thinkube api` with the same token, once with its review cache (the default, 10 s)
and once without (every request makes a TokenReview and a SubjectAccessReview). It prints
requests/s, p50 and p99 for listing 100 and 1,000 SFTRuns and for creating them, and each
path's throughput as a ratio of the direct one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # for tests.support

from tests.support import control_plane  # noqa: E402
from tests.support.hack import load  # noqa: E402

CONCURRENCY = 8
SPEC = {"baseModel": "tiny", "dataset": {"uri": "pvc://art/data.jsonl"}, "nodes": 1, "gpusPerNode": 0}


def sftrun(name: str) -> dict:
    return {"apiVersion": "thinkube.dev/v1alpha1", "kind": "SFTRun", "metadata": {"name": name}, "spec": SPEC}


async def measure(client: httpx.AsyncClient, requests: list[tuple[str, str, dict | None]]) -> dict:
    """requests/s, p50 and p99 (ms) of `requests` sent CONCURRENCY at a time; every answer must be 2xx."""
    latencies: list[float] = []
    queue = list(reversed(requests))

    async def worker() -> None:
        while queue:
            method, url, body = queue.pop()
            t0 = time.perf_counter()
            r = await client.request(method, url, json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code >= 300:
                raise SystemExit(f"{method} {url}: {r.status_code} {r.text[:300]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    seconds = time.perf_counter() - t0
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
    }


def direct_client(kubeconfig: Path, token: str) -> httpx.AsyncClient:
    cfg = yaml.safe_load(kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    verify = ssl.create_default_context(cafile=cluster["certificate-authority"])
    return httpx.AsyncClient(
        base_url=cluster["server"],
        verify=verify,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        limits=httpx.Limits(max_connections=CONCURRENCY),
    )


def plane_client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        limits=httpx.Limits(max_connections=CONCURRENCY),
    )


async def run_paths(paths: dict[str, tuple[httpx.AsyncClient, str]], ns: str, n: int) -> dict[str, dict[str, dict]]:
    """For each path: `n` creates."""
    out: dict[str, dict[str, dict]] = {name: {} for name in paths}
    for index, (name, (client, prefix)) in enumerate(paths.items()):
        base = f"{prefix}/namespaces/{ns}/sftruns"
        creates = [("POST", base, sftrun(f"p{index}-{i}")) for i in range(n)]
        await client.request("GET", base)  # connection set up outside the timing
        out[name]["create"] = await measure(client, creates)
    return out


async def run_lists(paths: dict[str, tuple[httpx.AsyncClient, str]], namespaces: dict[int, str], n: int) -> dict:
    out: dict[str, dict[str, dict]] = {name: {} for name in paths}
    for size, ns in namespaces.items():
        for name, (client, prefix) in paths.items():
            url = f"{prefix}/namespaces/{ns}/sftruns"
            out[name][f"list {size}"] = await measure(client, [("GET", url, None)] * max(20, n // (size // 100)))
    return out


def populate(kubectl, ns: str, count: int) -> None:
    docs = [json.dumps(sftrun(f"obj-{i}")) for i in range(count)]
    for start in range(0, count, 250):
        kubectl("create", "-n", ns, "-f", "-", input="\n".join(docs[start : start + 250]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300, help="creates per path; lists scale down with size")
    args = p.parse_args()
    hack = load("cluster")
    started = not hack.status_quiet()
    kubeconfig = hack.up()
    kubectl_bin, helm_bin = hack.tool("kubectl"), hack.tool("helm")

    def tool(binary: str):
        def call(*a: str, input: str | None = None) -> str:
            return subprocess.run(
                [binary, "--kubeconfig", str(kubeconfig), *a], input=input, capture_output=True, text=True, check=True
            ).stdout

        return call

    kubectl, helm = tool(kubectl_bin), tool(helm_bin)
    ns = f"tk-bench-api-{uuid.uuid4().hex[:5]}"
    extra = {size: f"{ns}-{size}" for size in (100, 1000)}
    control_plane.prepare(kubectl, helm, ns)
    for size, other in extra.items():
        kubectl("create", "namespace", other)
        kubectl("create", "role", "tk", "-n", other, "--verb=get,list", "--resource=sftruns.thinkube.dev")
        kubectl("create", "rolebinding", "tk", "-n", other, "--role=tk", f"--serviceaccount={ns}:alice")
        populate(kubectl, other, size)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cached_dir, uncached_dir = Path(tmp, "cached"), Path(tmp, "uncached")
            cached_dir.mkdir()
            uncached_dir.mkdir()
            with (
                control_plane.running(kubectl, kubeconfig, ns, cached_dir, 10) as cached,
                control_plane.running(kubectl, kubeconfig, ns, uncached_dir, 0) as uncached,
            ):

                async def go() -> dict:
                    clients = {
                        "direct": (direct_client(kubeconfig, cached.token), "/apis/thinkube.dev/v1alpha1"),
                        "api, cache": (plane_client(cached.url, cached.token), "/v1"),
                        "api, no cache": (plane_client(uncached.url, cached.token), "/v1"),
                    }
                    try:
                        creates = await run_paths(clients, ns, args.requests)
                        lists = await run_lists(clients, extra, args.requests)
                    finally:
                        for client, _ in clients.values():
                            await client.aclose()
                    return {k: {**creates[k], **lists[k]} for k in clients}

                results = asyncio.run(go())
    finally:
        control_plane.cleanup(kubectl, ns)
        for other in extra.values():
            control_plane.cleanup(kubectl, other)
        if started:
            hack.down(quiet=True)
    print(f"\ncontrol plane overhead ({CONCURRENCY} requests in flight, one client; ratio = rps / direct rps)")
    print(f"{'operation':<11} {'path':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    for op in ("create", "list 100", "list 1000"):
        base = results["direct"][op]["rps"]
        for path, ops in results.items():
            r = ops[op]
            print(f"{op:<11} {path:<14} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['rps'] / base:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
