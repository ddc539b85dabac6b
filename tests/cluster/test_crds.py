"""The generated CRDs on a real API server: defaults, validation messages, subresources, examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "charts" / "thinkube" / "crds"
PLURALS = ("curationjobs", "sftruns", "budgetforcedservers", "evalsweeps")


@pytest.fixture(scope="module")
def crds(cluster):
    # Server-side: no last-applied annotation, whose 256 KiB cap large CRDs can hit.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.thinkube.dev" for p in PLURALS))


def apply(cluster, namespace, manifest: str, check: bool = True):
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=check)


def cr(kind: str, name: str, spec: str) -> str:
    return f"apiVersion: thinkube.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"


SFT = "{baseModel: tiny, dataset: {uri: 'pvc://data/s1k.jsonl'}"


def test_short_names_category_and_printer_columns(cluster, namespace, crds):
    apply(cluster, namespace, cr("SFTRun", "run", SFT + "}"))
    out = cluster.kubectl("get", "sft", "-n", namespace).stdout
    assert out.split("\n")[0].split() == [
        "NAME",
        "PHASE",
        "NODES",
        "GPUS/NODE",
        "PODS",
        "STEP",
        "LOSS",
        "RESTARTS",
        "AGE",
    ]
    assert "sftrun.thinkube.dev/run" in cluster.kubectl("get", "thinkube", "-n", namespace, "-o", "name").stdout
    for short in ("bfs", "evs"):
        assert cluster.kubectl("get", short, "-n", namespace).returncode == 0


def test_s1_defaults_are_filled_in_by_the_api_server(cluster, namespace, crds):
    apply(cluster, namespace, cr("SFTRun", "run", SFT + "}"))
    spec = cluster.kubectl_json("get", "sft", "run", "-n", namespace)["spec"]
    assert (spec["nodes"], spec["gpusPerNode"], spec["maxRestarts"]) == (2, 8, 3)
    assert "gpuResource" not in spec  # the operator's --gpu-resource (the chart's gpu.resourceName) decides
    assert spec["training"] == {
        "epochs": 5,
        "learningRate": 1e-5,
        "globalBatchSize": 16,
        "microBatchSize": 1,
        "blockSize": 32768,
        "warmupRatio": 0.05,
        "lrScheduler": "cosine",
        "adamBeta1": 0.9,
        "adamBeta2": 0.95,
        "weightDecay": 1e-4,
        "maxGradNorm": 1.0,
        "overlong": "truncate",
        "packing": False,
        "precision": "auto",  # bf16 on GPUs
        "fsdp": "full_shard",
        "cpuOffload": False,
        "gradientCheckpointing": True,
        "chatFormat": "s1",
        "saveEvery": 0,
        "seed": 42,
    }
    apply(cluster, namespace, cr("BudgetForcedServer", "srv", "{model: {uri: tiny}}"))
    budget = cluster.kubectl_json("get", "bfs", "srv", "-n", namespace)["spec"]["budget"]
    assert budget == {
        "minThinkingTokens": 0,
        "numIgnore": 0,
        "ignoreString": "Wait",
        "finalAnswerPrefix": "Final Answer:",
    }


@pytest.mark.parametrize(
    "kind, name, spec, field",
    [
        (
            "BudgetForcedServer",
            "s",
            "{model: {uri: tiny}, budget: {minThinkingTokens: 500, maxThinkingTokens: 100}}",
            "spec.budget.minThinkingTokens",
        ),
        ("BudgetForcedServer", "s", "{model: {uri: tiny, fromSFTRun: r}}", "spec.model"),
        ("BudgetForcedServer", "s", "{model: {uri: tiny}, engine: llamacpp}", "spec.engine"),
        ("SFTRun", "r", SFT + ", nodes: 3}", "spec.training.globalBatchSize"),
        ("SFTRun", "r", SFT + ", outputUri: 'hf://org/name'}", "spec.outputUri"),
        ("SFTRun", "r", "{baseModel: 'ftp://x', dataset: {uri: 'pvc://d/x'}}", "spec.baseModel"),
        ("SFTRun", "r", "{dataset: {uri: 'pvc://d/x'}}", "spec.baseModel"),
        ("SFTRun", "9lives", SFT + "}", "metadata.name"),
        ("SFTRun", "a" * 41, SFT + "}", "metadata.name"),
        ("CurationJob", "c", "{pools: {p: 'pvc://d/p'}}", "spec.judge"),
        (
            "CurationJob",
            "c",
            "{pools: {p: 'pvc://d/p'}, domainColumn: d, teacher: {endpoint: big, apiKeySecret: {name: k}}}",
            "spec.teacher.apiKeySecret",
        ),
        ("EvalSweep", "e", "{target: {url: 'http://s:8000'}, benchmarks: []}", "spec.benchmarks"),
        (
            "CurationJob",
            "c",
            "{pools: {p: 'pvc://d/p'}, domainColumn: d, columnMaps: {q: {question: x}}}",
            "spec.columnMaps",
        ),
        (
            "CurationJob",
            "c",
            "{pools: {p: 'pvc://d/p'}, domainColumn: d, answerKinds: {q: integer}}",
            "spec.answerKinds",
        ),
    ],
)
def test_bad_resources_are_rejected_naming_the_field(cluster, namespace, crds, kind, name, spec, field):
    r = apply(cluster, namespace, cr(kind, name, spec), check=False)
    assert r.returncode != 0 and field in r.stderr, r.stderr


def test_base_model_is_fixable_until_the_run_has_a_job(cluster, namespace, crds):
    apply(cluster, namespace, cr("SFTRun", "run", SFT + "}"))

    def status(**fields):  # what the operator writes; no operator runs here
        cluster.kubectl(
            "patch",
            "sft",
            "run",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": fields}),
        )

    def set_model(model: str):
        return cluster.kubectl(
            "patch",
            "sft",
            "run",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"baseModel": model}}),
            check=False,
        )

    assert set_model("hf://o/typo").returncode == 0  # no status yet
    status(phase="Pending")  # waiting for its dataset
    assert set_model("hf://o/m").returncode == 0
    for phase in ("Pending", "Running"):  # Pending with a Job: queued by Kueue, pods not yet started
        status(phase=phase, jobName="run-train")
        r = set_model("hf://o/other")
        assert r.returncode != 0 and "spec.baseModel" in r.stderr and "baseModel is immutable" in r.stderr, r.stderr
    assert cluster.kubectl_json("get", "sft", "run", "-n", namespace)["spec"]["baseModel"] == "hf://o/m"
    cluster.kubectl("patch", "sft", "run", "-n", namespace, "--type=merge", "-p", '{"spec":{"maxRestarts":5}}')


def test_servers_have_a_scale_subresource(cluster, namespace, crds):
    apply(cluster, namespace, cr("BudgetForcedServer", "srv", "{model: {uri: tiny}}"))
    cluster.kubectl("scale", "bfs", "srv", "-n", namespace, "--replicas=3")
    assert cluster.kubectl_json("get", "bfs", "srv", "-n", namespace)["spec"]["replicas"] == 3


def test_examples_pass_server_side_dry_run(cluster, namespace, crds):
    r = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(REPO / "examples"))
    assert r.stdout.count("created (server dry run)") == 4, r.stdout
