"""`thinkube demo`: the whole s1 pipeline on the built-in tiny model, on a CPU, in minutes.

Reruns with the same --out reuse every finished stage whose settings did not change.
--on-cluster applies the same pipeline as CurationJob/SFTRun/BudgetForcedServer/EvalSweep
through the operator instead of running it here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from thinkube.api.stages.evaluate import int_list
from thinkube.constants import DEFAULT_IMAGE, ENV_IMAGE, EXIT_BAD_CONFIG, EXIT_FAILED
from thinkube.workloads.demo.config import STAGES, DemoConfig
from thinkube.workloads.demo.data import DataSpec

log = logging.getLogger(__name__)


def _ints(value: str) -> tuple[int, ...]:
    try:
        return tuple(int_list(value))  # a tuple: DemoConfig is frozen and fingerprinted
    except ValueError as e:  # argparse prints an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(e)) from None


def _stages(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {unknown or value!r}: use a comma list of {','.join(STAGES)}"
        )
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    d, s = DemoConfig(), DataSpec()
    p.add_argument(
        "--out", default=d.out, help=f"output folder; rerunning with it reuses finished stages (default {d.out})"
    )
    p.add_argument(
        "--stages",
        type=_stages,
        default=d.stages,
        help=f"stages to run, comma list of {','.join(STAGES)} (earlier stages must be finished in --out)",
    )
    p.add_argument("--seed", type=int, default=s.seed, help="seed of the generated data and the selection")
    p.add_argument("--pool-size", type=int, default=s.pool_size, help=f"generated pool rows (default {s.pool_size})")
    p.add_argument(
        "--benchmark-size", type=int, default=s.benchmark_size, help=f"held-out questions (default {s.benchmark_size})"
    )
    p.add_argument("--select", type=int, default=d.select, help=f"curated set size (default {d.select})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"SFT epochs (default {d.epochs})")
    p.add_argument(
        "--learning-rate",
        type=float,
        default=d.learning_rate,
        help=f"SFT peak learning rate (default {d.learning_rate})",
    )
    p.add_argument("--nproc", type=int, default=d.nproc, help=f"torchrun processes (default {d.nproc})")
    p.add_argument("--engine", choices=("auto", "vllm", "transformers"), default=d.engine, help="serving engine")
    p.add_argument("--budgets", type=_ints, default=d.budgets, help="max_thinking_tokens to sweep, e.g. 4,8,16,32")
    p.add_argument("--num-ignore", type=_ints, default=d.num_ignore, help="'Wait' extension counts to sweep")
    p.add_argument("--on-cluster", action="store_true", help="apply the pipeline as resources through the operator")
    p.add_argument("--kubeconfig", help="kubeconfig for --on-cluster (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--namespace", default="default", help="namespace for --on-cluster")
    p.add_argument("--timeout", type=float, default=3600, help="--on-cluster: seconds to watch the resources")
    p.add_argument(
        "--image",
        default=os.environ.get(ENV_IMAGE, DEFAULT_IMAGE),
        help=f"--on-cluster: image of the pod that copies files in and out of the claim "
        f"(the operator's workload image; default ${ENV_IMAGE} or {DEFAULT_IMAGE})",
    )
    p.add_argument(
        "--claim",
        default="thinkube-demo",
        help="--on-cluster: PVC for the data and every stage's output (created when missing)",
    )
    p.add_argument("--claim-size", default="5Gi", help="--on-cluster: size of a created claim")
    p.add_argument(
        "--access-mode",
        default="ReadWriteOnce",
        choices=("ReadWriteOnce", "ReadWriteMany"),
        help="--on-cluster: of a created claim; ReadWriteMany where stages may run on several nodes",
    )


def config_from(args: argparse.Namespace) -> DemoConfig:
    spec = replace(DataSpec(), seed=args.seed, pool_size=args.pool_size, benchmark_size=args.benchmark_size)
    cfg = DemoConfig(
        out=args.out,
        data=spec,
        select=args.select,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        nproc=args.nproc,
        engine=args.engine,
        budgets=args.budgets,
        num_ignore=args.num_ignore,
        stages=args.stages,
    )
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from(args)
    except ValueError as e:
        print(f"thinkube demo: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.on_cluster:
        return _on_cluster(cfg, args)
    from thinkube.workloads.demo import pipeline

    try:
        results = pipeline.run(cfg)
    except pipeline.StageFailed as e:
        print(f"thinkube demo: {e}", file=sys.stderr)
        return EXIT_FAILED
    return _report(out, results)


def _report(out: Path, results: dict) -> int:
    from thinkube.workloads.demo import report

    summary = report.write(out, results)
    print((out / report.REPORT_MD).read_text())
    print(
        f"[demo] report: {out / report.REPORT_MD}; plots: {out / report.LOSS_PNG}, "
        f"{results['eval']['plot'] if 'eval' in results else '(no eval stage)'}"
    )
    if "scaling" in summary and not summary["scaling"].get("rose", False):
        log.warning("%s", summary["scaling"]["verdict"])
    return 0


def _on_cluster(cfg: DemoConfig, args: argparse.Namespace) -> int:
    from thinkube.workloads.demo import cluster, data

    out = Path(cfg.out)
    pool, bench, pool_rows = data.write(cfg.data, out / "data")
    resources = cluster.demo_resources(
        cfg,
        pool_uri=f"pvc://{args.claim}/data/{pool.name}",
        benchmark_uri=f"pvc://{args.claim}/data/{bench.name}",
        output_prefix=f"pvc://{args.claim}/runs",
    )
    try:
        kube = cluster.connect(args.kubeconfig)
        cluster.upload(
            kube,
            args.namespace,
            args.claim,
            args.image,
            [pool, bench],
            "data",
            size=args.claim_size,
            access_mode=args.access_mode,
        )
        print(f"[demo] copied {pool.name} and {bench.name} into pvc://{args.claim}/data", flush=True)
        statuses = cluster.apply_and_watch(resources, kube=kube, namespace=args.namespace, timeout_s=args.timeout)
        if not cluster.all_done(statuses):
            print(
                f"thinkube demo --on-cluster: not every resource finished; see kubectl get thinkube -n {args.namespace}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        results = cluster.fetch_results(kube, args.namespace, args.claim, args.image, out / "cluster", cfg, pool_rows)
    except cluster.ClusterError as e:
        print(f"thinkube demo --on-cluster: {e}", file=sys.stderr)
        return EXIT_FAILED
    return _report(out, results)
