"""CurationJob and EvalSweep -> ConfigMap + Job running `thinkube curate` / `thinkube eval`."""

from __future__ import annotations

import json

from thinkube.operator.kinds import Defaults, Resolved, curation, evaluation

D = Defaults(image="img:1")


def body(kind: str, spec: dict) -> dict:
    return {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
        "spec": spec,
    }


CURATE = {"pools": {"numina": "pvc://pools/numina.parquet"}, "judge": "http://j:8000@J", "targetSize": 10}
SWEEP = {
    "target": {"serverRef": "s"},
    "benchmarks": [
        {"name": "aime24", "uri": "pvc://bench/aime24.jsonl"},
        {"name": "math500", "uri": "pvc://bench/m.jsonl", "limit": 5},
        {"name": "gpqa", "uri": "file:///data/gpqa.jsonl"},
    ],
    "maxThinkingTokens": [512, 1024],
    "parallelism": 2,
}


def test_curation_job_and_config():
    cm, job = curation.build(body("CurationJob", CURATE), Resolved(output_uri="pvc://out/cj"), D)
    assert job["metadata"]["name"] == cm["metadata"]["name"] == "x-curate"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["thinkube", "curate"]
    assert job["spec"]["backoffLimit"] == 1 and "completionMode" not in job["spec"]
    config = json.loads(cm["data"]["config.json"])
    assert {k: config[k] for k in ("pools", "judge", "target_size", "out", "base_models", "ngram")} == {
        "pools": {"numina": "pvc://pools/numina.parquet"},
        "judge": "http://j:8000@J",
        "target_size": 10,
        "out": "pvc://out/cj",
        "base_models": [],
        "ngram": 8,
    }
    assert "teacher" not in config and "max_retries" in config  # the pod's retries are not the calls' retries
    assert config["max_retries"] == 5
    assert sorted(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v) == [
        "out",
        "pools",
    ]


def test_curation_teacher_key_comes_from_its_secret_and_nowhere_else():
    teacher = {
        "endpoint": "https://api.example.com/v1@deepseek-r1",
        "apiKeySecret": {"name": "teacher-key", "key": "k"},
        "regenerate": True,
        "tokensPerMinute": 100000,
        "timeoutSeconds": 900,
    }
    cm, job = curation.build(
        body("CurationJob", {**CURATE, "teacher": teacher, "teacherGradeColumn": "grade"}),
        Resolved(output_uri="pvc://out/cj"),
        D,
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "THINKUBE_TEACHER_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "teacher-key", "key": "k"}},
    } in container["env"]
    config = json.loads(cm["data"]["config.json"])
    assert config["teacher"] == {
        "endpoint": "https://api.example.com/v1@deepseek-r1",
        "api_key_env": "THINKUBE_TEACHER_API_KEY",
        "regenerate": True,
        "max_tokens": 32768,
        "temperature": 0.0,
        "concurrency": 8,
        "tokens_per_minute": 100000,
        "timeout_seconds": 900,
        "grade_with_judge": False,
    }
    assert config["teacher_grade_column"] == "grade"
    # Only the Secret's name reaches the pod spec and the config; never a value, never an argument.
    assert "args" not in container and "teacher-key" not in cm["data"]["config.json"]


def test_curation_config_is_what_thinkube_curate_reads():
    from thinkube.api.stages.curate import CurateConfig, TeacherConfig

    spec = {
        **CURATE,
        "baseModels": ["http://b:8000@B"],
        "teacher": {"endpoint": "big", "gradeWithJudge": True, "maxTotalTokens": 5000000},
        "teacherGradeColumn": "grade",
    }
    cm, job = curation.build(
        body("CurationJob", spec), Resolved(output_uri="pvc://out/cj", teacher="http://big.ns.svc:8000@Big"), D
    )
    cfg = CurateConfig.model_validate(json.loads(cm["data"]["config.json"]))
    assert cfg.teacher.endpoint == "http://big.ns.svc:8000@Big" and cfg.teacher.grade_with_judge
    assert cfg.teacher.max_total_tokens == 5_000_000
    assert cfg.teacher.api_key_env == TeacherConfig.model_fields["api_key_env"].default
    # A server in the cluster needs no key: no Secret env.
    assert all("valueFrom" not in e for e in job["spec"]["template"]["spec"]["containers"][0]["env"])


def test_eval_sweep_fans_out_one_index_per_benchmark_with_a_bound():
    cm, job = evaluation.build(body("EvalSweep", SWEEP), Resolved("http://s.ns.svc:8000", "pvc://out/evs"), D)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (
        "Indexed",
        3,
        2,
        1,
    )
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailIndex"
    env = spec["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.index("JOB_COMPLETION_INDEX") < names.index("THINKUBE_CONFIG")  # $(...) needs it declared first
    assert env[names.index("THINKUBE_CONFIG")]["value"] == "/etc/thinkube/benchmark-$(JOB_COMPLETION_INDEX).json"
    cfg = json.loads(cm["data"]["benchmark-1.json"])
    assert cfg["benchmarks"] == {"math500": "pvc://bench/m.jsonl"} and cfg["limit"] == 5 and not cfg["progress"]
    assert (cfg["target"], cfg["out"], cfg["max_thinking_tokens"]) == (
        "http://s.ns.svc:8000",
        "pvc://out/evs/math500",
        [512, 1024],
    )
    assert set(cm["data"]) == {"benchmark-0.json", "benchmark-1.json", "benchmark-2.json"}


def test_eval_parallelism_never_exceeds_the_benchmarks():
    _, job = evaluation.build(body("EvalSweep", {**SWEEP, "parallelism": 10}), Resolved("http://s", "pvc://o/e"), D)
    assert job["spec"]["parallelism"] == 3
