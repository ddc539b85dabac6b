"""The resource models: s1 defaults, wire names, and cross-field rules checked in Python."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from thinkube.api import crdgen
from thinkube.api.resources import BudgetForcedServer, CurationJob, EvalSweep, SFTRun
from thinkube.api.resources.sft import TrainingProgress


def cr(cls, spec: dict, name: str = "x") -> dict:
    return {"apiVersion": "thinkube.dev/v1alpha1", "kind": cls.names.kind, "metadata": {"name": name}, "spec": spec}


SFT = {"baseModel": "hf://Qwen/Qwen2.5-32B-Instruct", "dataset": {"fromCurationJob": "s1k"}}
CURATE = {"pools": {"p": "pvc://data/pool.jsonl"}, "domainColumn": "domain"}


def test_sftrun_defaults_are_the_s1_recipe():
    s = SFTRun.model_validate(cr(SFTRun, SFT)).spec
    t = s.training
    assert (s.nodes, s.gpus_per_node, s.gpu_resource) == (2, 8, None)  # None: the operator's --gpu-resource
    assert (t.epochs, t.learning_rate, t.global_batch_size, t.block_size, t.warmup_ratio) == (5, 1e-5, 16, 32768, 0.05)
    assert (t.lr_scheduler, t.adam_beta1, t.adam_beta2, t.weight_decay) == ("cosine", 0.9, 0.95, 1e-4)
    assert (t.precision, t.fsdp, t.micro_batch_size, t.gradient_checkpointing) == ("auto", "full_shard", 1, True)


def test_server_budget_defaults():
    b = BudgetForcedServer.model_validate(cr(BudgetForcedServer, {"model": {"uri": "tiny"}})).spec.budget
    assert (b.max_thinking_tokens, b.min_thinking_tokens, b.num_ignore) == (None, 0, 0)
    assert (b.ignore_string, b.final_answer_prefix) == ("Wait", "Final Answer:")


def test_wire_names_are_camel_case_with_the_contract_spelling():
    spec = BudgetForcedServer.model_validate(cr(BudgetForcedServer, {"model": {"fromSFTRun": "run"}})).spec
    wire = spec.wire()
    assert wire["model"] == {"fromSFTRun": "run"}
    assert wire["budget"]["finalAnswerPrefix"] == "Final Answer:" and "queueName" not in wire


@pytest.mark.parametrize(
    "cls, spec, field",
    [
        (
            BudgetForcedServer,
            {"model": {"uri": "tiny"}, "budget": {"minThinkingTokens": 9, "maxThinkingTokens": 5}},
            "minThinkingTokens",
        ),
        (BudgetForcedServer, {"model": {"uri": "tiny", "fromSFTRun": "r"}}, "spec.model.uri or spec.model.fromSFTRun"),
        (SFTRun, {**SFT, "nodes": 3}, "training.globalBatchSize"),
        (SFTRun, {**SFT, "outputUri": "hf://org/model"}, "outputUri"),
        (SFTRun, {**SFT, "baseModel": "ftp://x"}, "baseModel"),
        (SFTRun, {**SFT, "epochs": 3}, "epochs"),  # belongs under training: unknown fields are refused
        (CurationJob, {"pools": {"p": "pvc://d/p"}}, "judge"),
        (CurationJob, {**CURATE, "teacher": {"endpoint": "big", "apiKeySecret": {"name": "s"}}}, "apiKeySecret"),
        (
            CurationJob,
            {**CURATE, "teacher": {"endpoint": "http://t@T", "gradeWithJudge": True}},
            "teacher.gradeWithJudge",
        ),
        (CurationJob, {**CURATE, "teacher": {"endpoint": "http://t@T", "maxTokens": 0}}, "maxTokens"),
        (CurationJob, {**CURATE, "teacher": {"endpoint": "http://t@T", "requestsPerMinute": 0}}, "requestsPerMinute"),
        (CurationJob, {**CURATE, "teacher": {"endpoint": "Not A Server"}}, "teacher.endpoint"),
        (
            CurationJob,
            {**CURATE, "teacher": {"endpoint": "http://t@T", "apiKeySecret": {"name": "s", "key": "a/b"}}},
            "apiKeySecret.key",
        ),
        (
            EvalSweep,
            {"target": {"url": "http://s:8000", "serverRef": "s"}, "benchmarks": [{"name": "a", "uri": "file:///a"}]},
            "spec.target.serverRef or spec.target.url",
        ),
        (EvalSweep, {"target": {"url": "http://s:8000"}, "benchmarks": []}, "benchmarks"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(cls, spec, field):
    with pytest.raises(ValidationError) as e:
        cls.model_validate(cr(cls, spec))
    assert field in str(e.value)


def test_cpu_runs_count_one_process_per_node_for_the_batch_rule():
    s = SFTRun.model_validate(cr(SFTRun, {**SFT, "nodes": 2, "gpusPerNode": 0})).spec
    assert s.training.global_batch_size == 16


def test_curation_teacher_defaults_and_wire_names():
    spec = {
        **CURATE,
        "judge": "http://j@J",
        "teacher": {
            "endpoint": "https://api.example.com/v1@deepseek-r1",
            "apiKeySecret": {"name": "teacher-key"},
            "requestsPerMinute": 60,
            "timeoutSeconds": 600,
            "gradeWithJudge": True,
        },
        "teacherGradeColumn": "grade",
    }
    s = CurationJob.model_validate(cr(CurationJob, spec)).spec
    t = s.teacher
    assert (t.api_key_secret.name, t.api_key_secret.key) == ("teacher-key", "api-key")
    assert (t.regenerate, t.max_tokens, t.temperature, t.concurrency, t.tokens_per_minute) == (
        False,
        32768,
        0.0,
        8,
        None,
    )
    wire = s.wire()
    assert wire["teacher"]["apiKeySecret"] == {"name": "teacher-key", "key": "api-key"}
    assert (wire["teacher"]["timeoutSeconds"], wire["teacherGradeColumn"]) == (600, "grade")
    # A BudgetForcedServer in the cluster as the teacher: no key.
    assert CurationJob.model_validate(cr(CurationJob, {**CURATE, "teacher": {"endpoint": "big"}})).spec.teacher


def test_servers_may_run_the_demo_teacher():
    s = BudgetForcedServer.model_validate(cr(BudgetForcedServer, {"model": {"uri": "tiny"}, "engine": "demo-teacher"}))
    assert s.spec.engine == "demo-teacher"


REPORT = {
    "step": 12,
    "totalSteps": 315,
    "epoch": 0.19,
    "loss": 1,  # a JSON number without a fraction is still a number
    "tokensPerSecond": 5321.5,
    "etaSeconds": 4210.0,
    "updatedAt": "2026-01-02T03:04:05.123Z",
}


def test_training_progress_takes_a_trainer_report_and_stores_it_camel_case():
    p = TrainingProgress.model_validate(REPORT)
    assert (p.step, p.total_steps, p.loss, p.tokens_per_second) == (12, 315, 1.0, 5321.5)
    assert p.wire() == {**REPORT, "loss": 1.0}
    minimal = {"step": 0, "totalSteps": 1, "updatedAt": "2026-01-02T03:04:05Z"}
    assert TrainingProgress.model_validate(minimal).wire() == minimal
    run = SFTRun.model_validate({**cr(SFTRun, SFT), "status": {"pods": "2/2 pods ready", "progress": REPORT}})
    assert run.status.progress == p and run.status.pods == "2/2 pods ready"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"step": "12"}, "step"),  # strict: no strings for numbers
        ({"step": 12.0}, "step"),
        ({"step": True}, "step"),
        ({"loss": "1.5"}, "loss"),
        ({"eta": 3}, "eta"),  # unknown fields are refused
        ({"step": -1}, "step"),
        ({"totalSteps": 0}, "totalSteps"),
        ({"step": 316}, "step"),  # beyond totalSteps
        ({"tokensPerSecond": -1.0}, "tokensPerSecond"),
        ({"etaSeconds": -0.5}, "etaSeconds"),
        ({"loss": float("nan")}, "loss"),
        ({"updatedAt": "2026-01-02T03:04:05+02:00"}, "updatedAt"),  # UTC only
        ({"updatedAt": "yesterday"}, "updatedAt"),
        ({"updatedAt": 1767322000}, "updatedAt"),
    ],
)
def test_training_progress_refuses_loose_reports_naming_the_field(change, field):
    with pytest.raises(ValidationError) as e:
        TrainingProgress.model_validate({**REPORT, **change})
    assert field in str(e.value)


def test_kubectl_get_sft_shows_pods_step_and_loss():
    columns = crdgen.crd(SFTRun)["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = {c["name"]: (c["jsonPath"], c["type"]) for c in columns}
    assert shown["Pods"] == (".status.pods", "string")
    assert shown["Step"] == (".status.progress.step", "integer")
    assert shown["Loss"] == (".status.progress.loss", "number")
