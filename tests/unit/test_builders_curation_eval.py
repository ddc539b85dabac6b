"""CurationJob and EvalSweep -> ConfigMap + Job running `thinkube curate` / `thinkube eval`."""
from __future__ import annotations

import json

from thinkube.operator.builders import Defaults, Resolved
from thinkube.operator.builders import curation, evaluation

D = Defaults(image="img:1")


def body(kind: str, spec: dict) -> dict:
    return {"apiVersion": "thinkube.dev/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
            "spec": spec}


CURATE = {"pools": {"numina": "pvc://pools/numina.parquet"}, "judge": "http://j:8000@J", "targetSize": 10}
SWEEP = {"target": {"serverRef": "s"}, "benchmarks": [{"name": "aime24", "uri": "pvc://bench/aime24.jsonl"},
                                                      {"name": "math500", "uri": "pvc://bench/m.jsonl", "limit": 5},
                                                      {"name": "gpqa", "uri": "file:///data/gpqa.jsonl"}],
         "maxThinkingTokens": [512, 1024], "parallelism": 2}


def test_curation_job_and_config():
    cm, job = curation.build(body("CurationJob", CURATE), Resolved(output_uri="pvc://out/cj"), D)
    assert job["metadata"]["name"] == cm["metadata"]["name"] == "x-curate"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["thinkube", "curate"]
    assert job["spec"]["backoffLimit"] == 1 and "completionMode" not in job["spec"]
    assert json.loads(cm["data"]["config.json"]) == {
        "pools": {"numina": "pvc://pools/numina.parquet"}, "judge": "http://j:8000@J", "target_size": 10,
        "out": "pvc://out/cj", "column_maps": {}, "decontaminate": {}, "base_models": [], "grade_with_judge": False,
        "answer_kinds": {}, "seed": 0, "allow_smaller": False, "concurrency": 8, "max_tokens": 1024, "ngram": 8}
    assert sorted(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v) == [
        "out", "pools"]


def test_eval_sweep_fans_out_one_index_per_benchmark_with_a_bound():
    cm, job = evaluation.build(body("EvalSweep", SWEEP), Resolved("http://s.ns.svc:8000", "pvc://out/evs"), D)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (
        "Indexed", 3, 2, 1)
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailIndex"
    env = spec["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.index("JOB_COMPLETION_INDEX") < names.index("THINKUBE_CONFIG")  # $(...) needs it declared first
    assert env[names.index("THINKUBE_CONFIG")]["value"] == "/etc/thinkube/benchmark-$(JOB_COMPLETION_INDEX).json"
    cfg = json.loads(cm["data"]["benchmark-1.json"])
    assert cfg["benchmark"] == {"math500": "pvc://bench/m.jsonl"} and cfg["limit"] == 5
    assert (cfg["target"], cfg["out"], cfg["max_thinking_tokens"]) == (
        "http://s.ns.svc:8000", "pvc://out/evs/math500", [512, 1024])
    assert set(cm["data"]) == {"benchmark-0.json", "benchmark-1.json", "benchmark-2.json"}


def test_eval_parallelism_never_exceeds_the_benchmarks():
    _, job = evaluation.build(body("EvalSweep", {**SWEEP, "parallelism": 10}), Resolved("http://s", "pvc://o/e"), D)
    assert job["spec"]["parallelism"] == 3
