"""Operator benchmark: `python benchmarks/operator.py [--count 200] [--sequential 25]` (local control plane, ~1.5 min).

Against the local API server (hack/cluster; started here when it is down, and stopped
again afterwards only then), with `thinkube operator` running as a subprocess watching a
fresh namespace:

1. Latency from `kubectl apply` of one resource to its child existing, p50/p99 over
   --sequential resources applied one after another (CurationJob -> its Job by default;
   --kind BudgetForcedServer -> its Deployment), and the operator's share of it: from the
   resource being seen to its child being seen.
2. --count resources in one `kubectl apply -f` of a multi-document file: time until all
   their children exist.
3. The operator process's CPU seconds and resident memory per phase (from
   /proc/<pid>/stat and /proc/<pid>/status), the control plane's CPU for context, and an
   idle window with every resource present (the cost of the resync timers).

"Seen"/"exists" means: a watch opened before any apply delivered the object's ADDED event
to this process.

Baseline, measured in the same run, the same way, interleaved with the operator samples:
`kubectl apply` of the child kind itself (a plain Job with `suspend: true`, or a Deployment
with 0 replicas, so that no pods follow) until the same watch sees it, i.e. the API
server's own latency for a comparable write, kubectl start-up included; in bulk, --count
such objects in one `kubectl apply -f`. Ratio = operator / baseline; what is above 1 is
the operator's overhead: the watch event reaching kopf, the reconcile, the server-side
apply of the children (CurationJob: a ConfigMap, then the Job). A second bulk baseline
applies the same --count resources into a namespace no operator watches, separating the
cost of the custom resources themselves (schema and CEL validation) from the operator's.

The machine is small and shared: numbers are noisy, which is why ratios are taken against
baselines of the same run. --resync-seconds defaults to the operator's own default (30);
the cluster tests use 1, which with hundreds of resources would be mostly timer load.
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the standard library's `operator`: keep its folder off the
# import path so that no import below picks this file up instead.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE]
# The repo root last, for the test helpers the operator harness imports (tests.support):
# after the standard library, so `operator` still means Python's own.
sys.path.append(os.path.dirname(_HERE))

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "charts" / "thinkube" / "crds"
GROUP, VERSION = "thinkube.dev", "v1alpha1"
PLURALS = ("curationjobs", "sftruns", "budgetforcedservers", "evalsweeps")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load(name: str, path: Path):
    # By path: putting the repo root on sys.path would shadow the standard library's `operator`
    # with the repo's operator/ folder.
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_hack():
    return load("thinkube_hack_cluster", REPO / "hack" / "cluster.py")


# ---------------------------------------------------------------- what gets applied


class Kind:
    """A resource kind under test: its manifest, its child, and the baseline's plain child."""

    def __init__(self, kind: str, suspend: bool = False):
        self.kind, self.suspend = kind, suspend
        if kind == "CurationJob":
            self.plural, self.child_api, self.child_plural = "curationjobs", "batch/v1", "jobs"
        elif kind == "BudgetForcedServer":
            self.plural, self.child_api, self.child_plural = "budgetforcedservers", "apps/v1", "deployments"
        else:
            raise SystemExit(f"--kind {kind}: only CurationJob and BudgetForcedServer")

    def resource(self, name: str) -> dict:
        # Small valid specs, the shapes of examples/*.yaml and tests/cluster/test_operator.py.
        if self.kind == "CurationJob":
            spec = {
                "pools": {"p": "pvc://data/pool.jsonl"},
                "domainColumn": "domain",
                "outputUri": f"pvc://art/cj/{name}",
            }
        else:
            spec = {"model": {"uri": "tiny"}, "engine": "transformers", "gpus": 0}
        if self.suspend:
            spec["suspend"] = True
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": self.kind, "metadata": {"name": name}, "spec": spec}

    def child_name(self, name: str) -> str:
        return f"{name}-curate" if self.kind == "CurationJob" else name

    def baseline(self, name: str) -> dict:
        labels = {"app": "thinkube-bench-baseline", "bench": name}
        pod = {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "thinkube:bench", "command": ["true"]}]},
        }
        if self.child_plural == "jobs":
            pod["spec"]["restartPolicy"] = "Never"
            return {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "labels": labels},
                "spec": {"suspend": True, "template": pod},
            }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": pod},
        }


def documents(objs: list[dict]) -> str:
    return "".join(f"---\n{json.dumps(o)}\n" for o in objs)  # JSON is YAML


# ---------------------------------------------------------------- watching children


class Watcher:
    """Records when each object of one kind in the namespace is first seen (ADDED)."""

    def __init__(self, api_client, namespace: str, api_version: str, plural: str):
        self.api, self.namespace = api_client, namespace
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        self.url = f"{base}/namespaces/{namespace}/{plural}"
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._resp = None
        self.error: BaseException | None = None
        self.rv = self._get({})["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, daemon=True, name="watch")
        self.thread.start()

    def _request(self, query: dict, stream: bool):
        req = self.api.param_serialize(
            "GET",
            self.url,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        return self.api.call_api(*req, _request_timeout=None if stream else 30)

    def _get(self, query: dict) -> dict:
        resp = self._request(query, stream=False)
        return json.loads(resp.read())

    def _run(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        while not self._stop.is_set():
            try:
                resp = self._request(
                    {
                        "watch": "true",
                        "resourceVersion": self.rv,
                        "timeoutSeconds": "30",
                        "allowWatchBookmarks": "true",
                    },
                    stream=True,
                )
                self._resp = resp.response
                for line in iter_resp_lines(resp.response):
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":  # 410 Gone: list again, watch from there
                        self.rv = self._get({})["metadata"]["resourceVersion"]
                        break
                    self.rv = obj["metadata"]["resourceVersion"]
                    if event["type"] == "ADDED":
                        now = time.perf_counter()
                        with self.cond:
                            self.seen.setdefault(obj["metadata"]["name"], now)
                            self.cond.notify_all()
            except Exception as e:  # connection cut: watch again from the last version
                if self._stop.is_set():
                    return
                self.error = e
                time.sleep(0.2)

    def wait(self, names, timeout: float) -> float | None:
        """perf_counter time when the last of `names` was seen; None on timeout."""
        names = list(names)
        deadline = time.perf_counter() + timeout
        with self.cond:
            while not all(n in self.seen for n in names):
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 1.0))
            return max(self.seen[n] for n in names)

    def count(self, names) -> int:
        with self.cond:
            return sum(n in self.seen for n in names)

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._resp is not None:
                self._resp.shutdown() if hasattr(self._resp, "shutdown") else self._resp.close()
        except Exception:
            pass


# ---------------------------------------------------------------- processes and /proc


def proc_usage(pid: int) -> tuple[float, float, float]:
    """(CPU seconds user+system, RSS MiB, peak RSS MiB) of one process, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        kib = lambda key: int(status.get(key, "0 kB").split()[0])  # noqa: E731
        return cpu, kib("VmRSS") / 1024, kib("VmHWM") / 1024
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0, 0.0


def plane_cpu(pids: dict[str, int]) -> float:
    return sum(proc_usage(p)[0] for p in pids.values())


class Usage:
    """CPU/RSS of the operator and CPU of the control plane, between two marks."""

    def __init__(self, op_pid: int, plane_pids: dict[str, int], started: float, plane_at_start: float):
        """started: perf_counter when the operator process was started; the first phase counts from there."""
        self.op_pid, self.plane_pids = op_pid, plane_pids
        self.rows: list[tuple[str, float, float, float, float, float]] = []
        self._t, self._op, self._plane = started, (0.0, 0.0, 0.0), plane_at_start

    def _plane_cpu(self) -> float:
        return plane_cpu(self.plane_pids)

    def mark(self) -> None:
        self._t, self._op, self._plane = time.perf_counter(), proc_usage(self.op_pid), self._plane_cpu()

    def phase(self, name: str) -> None:
        t, op, plane = time.perf_counter(), proc_usage(self.op_pid), self._plane_cpu()
        # name, wall s, operator CPU s, RSS MiB now, peak RSS MiB so far, control-plane CPU s
        self.rows.append((name, t - self._t, op[0] - self._op[0], op[1], op[2], plane - self._plane))
        self._t, self._op, self._plane = t, op, plane


# ---------------------------------------------------------------- the benchmark


def pct(values: list[float], q: float) -> float:
    """q-th percentile, linear interpolation between closest ranks (p99 of 25 samples ~ the max)."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Bench:
    def __init__(self, args, hack, kubeconfig: Path, namespace: str):
        self.args, self.hack, self.kubeconfig, self.namespace = args, hack, kubeconfig, namespace
        self.kind = Kind(args.kind, args.suspend)
        self.children = self.resources = None  # Watchers, set by run()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300):
        r = subprocess.run(
            [self.hack.tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
        return r

    def apply(self, objs: list[dict], namespace: str | None = None) -> tuple[float, float]:
        """`kubectl apply` of these objects in one process: (its start as perf_counter, seconds it took)."""
        text = documents(objs)
        t0 = time.perf_counter()
        self.kubectl("apply", "-n", namespace or self.namespace, "-f", "-", input=text)
        return t0, time.perf_counter() - t0

    def _wait(self, watcher: Watcher, name: str) -> float:
        seen = watcher.wait([name], self.args.timeout)
        if seen is None:
            raise SystemExit(f"{name} did not appear within {self.args.timeout:.0f}s")
        return seen

    def sequential(self, prefix: str, n: int) -> dict[str, list[float]]:
        k = self.kind
        out: dict[str, list[float]] = {"op": [], "op_apply": [], "react": [], "base": [], "base_apply": []}
        for i in range(n):
            # Interleaved, so that drifting background load hits both alike.
            base = f"{prefix}b-{i}"
            t0, took = self.apply([k.baseline(base)])
            out["base"].append(self._wait(self.children, base) - t0)
            out["base_apply"].append(took)
            name = f"{prefix}r-{i}"
            t0, took = self.apply([k.resource(name)])
            child = self._wait(self.children, k.child_name(name))
            out["op"].append(child - t0)
            out["op_apply"].append(took)
            out["react"].append(child - self._wait(self.resources, name))
            if (i + 1) % 5 == 0 or i + 1 == n:
                say(
                    f"  sequential {i + 1}/{n}: last {k.kind}->child {out['op'][-1] * 1e3:.0f} ms, "
                    f"baseline {out['base'][-1] * 1e3:.0f} ms"
                )
        return out

    def bulk(
        self, watcher: Watcher, objs: list[dict], targets: list[str], what: str, namespace: str | None = None
    ) -> dict[str, float]:
        """Apply all objs in one kubectl; times (s from its start) until the targets are seen by watcher."""
        t0, took = self.apply(objs, namespace)
        say(
            f"  {what}: kubectl apply of {len(objs)} returned after {took:.1f}s; {watcher.count(targets)} "
            f"of {len(targets)} seen"
        )
        deadline = time.perf_counter() + self.args.timeout * 4
        last = None
        while last is None:
            last = watcher.wait(targets, 5)
            if last is None:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"{what}: only {watcher.count(targets)}/{len(targets)} appeared")
                say(f"  {what}: {watcher.count(targets)}/{len(targets)} so far")
        times = sorted(watcher.seen[t] - t0 for t in targets)
        return {"t0": t0, "apply": took, "all": last - t0, "first": times[0], "p50": pct(times, 50)}


def settle(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def run(args) -> int:
    hack = load_hack()
    from kubernetes import config

    given = os.environ.get("KUBECONFIG")
    started = False
    if given and not args.use_kubeconfig:
        say(f"ignoring KUBECONFIG={given}: this uses the local control plane (pass --use-kubeconfig to override)")
    if given and args.use_kubeconfig:
        kubeconfig = Path(given)
    else:
        started = not hack.status_quiet()
        if started:
            say("local control plane is down: starting it (hack/cluster.py up)")
        kubeconfig = hack.up()
    plane_pids = {} if args.use_kubeconfig else hack._read_pids()
    suffix = uuid.uuid4().hex[:6]
    ns, quiet_ns = f"tk-bench-{suffix}", f"tk-bench-{suffix}-unwatched"
    tmp = Path(tempfile.mkdtemp(prefix="thinkube-bench-"))
    op = None
    watchers: list[Watcher] = []
    api = None
    made: list[str] = []
    ok = False
    bench = Bench(args, hack, kubeconfig, ns)
    k = bench.kind
    try:
        say("installing the CRDs")
        bench.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
        bench.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.{GROUP}" for p in PLURALS))
        for name in (ns, quiet_ns):
            bench.kubectl("create", "namespace", name)
            made.append(name)
            bench.kubectl("label", "namespace", name, "thinkube.dev/bench=true")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        bench.children = Watcher(api, ns, k.child_api, k.child_plural)
        bench.resources = Watcher(api, ns, f"{GROUP}/{VERSION}", k.plural)
        unwatched = Watcher(api, quiet_ns, f"{GROUP}/{VERSION}", k.plural)
        watchers += [bench.children, bench.resources, unwatched]
        Operator = load("thinkube_test_operator", REPO / "tests" / "cluster" / "test_operator.py").Operator
        op = Operator(kubeconfig, ns, tmp / "operator.log", args.resync_seconds)
        say(f"starting the operator on namespace {ns} (log {op.log})")
        t, plane_t = time.perf_counter(), plane_cpu(plane_pids)
        op.start()
        say(f"operator healthy after {time.perf_counter() - t:.1f}s (pid {op.proc.pid})")
        usage = Usage(op.proc.pid, plane_pids, t, plane_t)

        say("warm-up: one resource and one baseline object (not counted)")
        bench.sequential("w", 1)
        settle(1)
        usage.phase("start-up + warm-up")

        say(f"phase 1: {args.sequential} {k.kind}s applied one at a time, interleaved with the baseline")
        usage.mark()
        seq = bench.sequential("s", args.sequential)
        usage.phase(f"sequential ({args.sequential} + baseline)")
        settle(args.settle)

        n = args.count
        names = [f"br-{i}" for i in range(n)]
        bulk: dict[str, dict[str, float]] = {}
        say(f"phase 2a: {n} plain {k.child_plural} in one kubectl apply (baseline)")
        usage.mark()
        bulk["plain"] = bench.bulk(
            bench.children,
            [k.baseline(f"bb-{i}") for i in range(n)],
            [f"bb-{i}" for i in range(n)],
            f"plain {k.child_plural}",
        )
        usage.phase(f"bulk: {n} plain {k.child_plural}")
        settle(args.settle)
        say(f"phase 2b: {n} {k.kind}s in one kubectl apply into {quiet_ns}, which no operator watches (baseline)")
        usage.mark()
        bulk["alone"] = bench.bulk(unwatched, [k.resource(x) for x in names], names, f"{k.kind}s alone", quiet_ns)
        usage.phase(f"bulk: {n} {k.kind}s, unwatched")
        settle(args.settle)
        say(f"phase 2c: {n} {k.kind}s in one kubectl apply into {ns}, with the operator")
        usage.mark()
        bulk["op"] = bench.bulk(
            bench.children, [k.resource(x) for x in names], [k.child_name(x) for x in names], f"{k.kind}s -> children"
        )
        usage.phase(f"bulk: {n} {k.kind}s, operator")
        t0 = bulk["op"]["t0"]
        bulk["op"]["resources_all"] = max(bench.resources.seen[x] for x in names) - t0
        react = [bench.children.seen[k.child_name(x)] - bench.resources.seen[x] for x in names]

        say(
            f"phase 3: {args.idle:.0f}s idle with {n + args.sequential + 1} resources (resync every "
            f"{args.resync_seconds:g}s)"
        )
        usage.mark()
        settle(args.idle)
        usage.phase(f"idle {args.idle:.0f}s")
        reconciles, errors = op.reconciles()
        report(args, seq, bulk, react, usage, reconciles, errors, plane_pids)
        ok = True
        return 0
    finally:
        for w in watchers:
            w.stop()
        if op is not None:
            say("stopping the operator")
            op.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"the operator's log is kept in {tmp}")
        if api is not None:
            release(api, ns)
        if started and not args.keep_cluster:
            say("stopping the local control plane (this run started it)")
            hack.down(quiet=True)
        elif made:
            say(f"deleting namespaces {', '.join(made)}")
            for name in made:
                bench.kubectl("delete", "namespace", name, "--wait=false", check=False)
            for name in made:
                wait_gone(bench, name, args.cleanup_timeout)


def release(api, ns: str) -> None:
    """Drop the operator's finalizer from every resource left (the operator is stopped by now)."""
    from kubernetes import client

    co = client.CustomObjectsApi(api)
    dropped = 0
    for plural in PLURALS:
        try:
            items = co.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]
        except Exception:
            continue
        for item in items:
            if item["metadata"].get("finalizers"):
                try:
                    co.patch_namespaced_custom_object(
                        GROUP, VERSION, ns, plural, item["metadata"]["name"], {"metadata": {"finalizers": None}}
                    )
                    dropped += 1
                except Exception:
                    pass
    say(f"released {dropped} resources (finalizers dropped)")


def wait_gone(bench: Bench, ns: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if bench.kubectl("get", "namespace", ns, check=False).returncode != 0:
            say(f"namespace {ns} gone")
            return
        time.sleep(2)
    say(f"namespace {ns} still terminating after {timeout:.0f}s; it finishes in the background")


def report(args, seq, bulk, react, usage: Usage, reconciles: int, errors: int, plane_pids) -> None:
    kind = args.kind
    child = "Job" if kind == "CurationJob" else "Deployment"
    ms = lambda v: f"{v * 1e3:8.0f}"  # noqa: E731
    print()
    print(f"1. One at a time: kubectl apply -> object seen by a watch ({args.sequential} samples each, ms)")
    print(f"{'':46}{'p50':>8}{'p99':>8}{'mean':>8}{'max':>8}   kubectl took, p50")
    for name, vals, took in (
        (f"{kind} -> its {child} (operator)", seq["op"], seq["op_apply"]),
        (f"plain {child} (baseline)", seq["base"], seq["base_apply"]),
    ):
        print(
            f"{name:46}{ms(pct(vals, 50))}{ms(pct(vals, 99))}{ms(statistics.fmean(vals))}{ms(max(vals))}"
            f"   {ms(pct(took, 50))}"
        )
    r = seq["react"]
    print(
        f"{'  of which ' + kind + ' seen -> ' + child + ' seen':46}{ms(pct(r, 50))}{ms(pct(r, 99))}"
        f"{ms(statistics.fmean(r))}{ms(max(r))}"
    )
    print(
        f"{'ratio operator / baseline':46}{pct(seq['op'], 50) / pct(seq['base'], 50):8.2f}"
        f"{pct(seq['op'], 99) / pct(seq['base'], 99):8.2f}"
    )

    n = args.count
    print()
    print(f"2. {n} objects in one kubectl apply (s from the start of kubectl; 'all': the last one seen)")
    print(f"{'':46}{'kubectl':>8}{'first':>8}{'p50':>8}{'all':>8}{'ms/obj':>8}")
    rows = (
        (f"{n} {kind}s -> their {child}s (operator)", bulk["op"]),
        (f"{n} {kind}s, no operator (baseline 2)", bulk["alone"]),
        (f"{n} plain {child}s (baseline)", bulk["plain"]),
    )
    for name, b in rows:
        print(f"{name:46}{b['apply']:8.2f}{b['first']:8.2f}{b['p50']:8.2f}{b['all']:8.2f}{b['all'] / n * 1e3:8.1f}")
    print(f"{'  ' + kind + 's themselves, with operator':46}{'':24}{bulk['op']['resources_all']:8.2f}")
    print(
        f"{'  ' + kind + ' seen -> ' + child + ' seen':46}  p50 {pct(react, 50) * 1e3:.0f} ms, "
        f"p99 {pct(react, 99) * 1e3:.0f} ms, max {max(react) * 1e3:.0f} ms"
    )
    print(f"{'ratio all: operator / plain ' + child + 's':46}{'':24}{bulk['op']['all'] / bulk['plain']['all']:8.2f}")
    print(f"{'ratio all: operator / no operator':46}{'':24}{bulk['op']['all'] / bulk['alone']['all']:8.2f}")

    print()
    plane = "control plane CPU s" if plane_pids else ""
    print(f"3. The operator process (resync every {args.resync_seconds:g}s); CPU % of one core")
    print(f"{'phase':46}{'wall s':>8}{'CPU s':>8}{'CPU %':>8}{'RSS MiB':>9}{'peak MiB':>10}  {plane}")
    for name, wall, cpu, rss, hwm, plane_cpu_s in usage.rows:
        extra = f"{plane_cpu_s:8.1f}" if plane_pids else ""
        print(f"{name:46}{wall:8.1f}{cpu:8.2f}{100 * cpu / max(wall, 1e-9):8.1f}{rss:9.1f}{hwm:10.1f}  {extra}")
    print(f"{'total':46}{sum(row[1] for row in usage.rows):8.1f}{sum(row[2] for row in usage.rows):8.2f}")
    print(f"reconciles: {reconciles} ({errors} raised and were retried)")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=200, help="resources applied at once (default 200)")
    p.add_argument("--sequential", type=int, default=25, help="resources applied one at a time (default 25)")
    p.add_argument("--kind", default="CurationJob", choices=["CurationJob", "BudgetForcedServer"])
    p.add_argument(
        "--suspend",
        action="store_true",
        help="create the resources with spec.suspend: their children are suspended, so no pods follow "
        "(as with the baseline objects); separates the operator's cost from the pods'",
    )
    p.add_argument("--resync-seconds", type=float, default=30.0, help="the operator's resync timer (default 30)")
    p.add_argument("--idle", type=float, default=10.0, help="idle window measured at the end (default 10 s)")
    p.add_argument("--settle", type=float, default=3.0, help="pause between phases (default 3 s)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-object timeout (bulk: 4x)")
    p.add_argument("--cleanup-timeout", type=float, default=90.0, help="wait this long for the namespace to go")
    p.add_argument("--keep-cluster", action="store_true", help="leave a control plane this run started running")
    p.add_argument(
        "--use-kubeconfig",
        action="store_true",
        help="benchmark the cluster of $KUBECONFIG instead of the local control plane (it creates "
        "and deletes a namespace there)",
    )
    args = p.parse_args(argv)
    if args.count < 1 or args.sequential < 1:
        p.error("--count and --sequential must be >= 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
