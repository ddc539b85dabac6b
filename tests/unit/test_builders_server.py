"""BudgetForcedServer -> Deployment + Service running `thinkube serve`."""

from __future__ import annotations

import importlib.util
import json

import pytest

from thinkube.operator.kinds import Defaults, Resolved
from thinkube.operator.kinds.server import build


def children(**spec):
    """(ConfigMap, Deployment, Service), and the `thinkube serve` config the ConfigMap holds."""
    body = {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": "BudgetForcedServer",
        "metadata": {"name": "s", "namespace": "ns", "uid": "u"},
        "spec": {"model": {"fromSFTRun": "r"}, **spec},
    }
    cm, deployment, service = build(body, Resolved(input_uri="pvc://out/r/final"), Defaults(image="img:1"))
    return deployment, service, json.loads(cm["data"]["config.json"])


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_deployment_runs_thinkube_serve_with_its_config_and_the_budget_defaults():
    deployment, _, cfg = children(budget={"maxThinkingTokens": 4096, "numIgnore": 2})
    c = container(deployment)
    assert c["command"] == ["thinkube", "serve"] and "args" not in c
    assert {"name": "THINKUBE_CONFIG", "value": "/etc/thinkube/config.json"} in c["env"]
    assert {"name": "config", "configMap": {"name": "s"}} in deployment["spec"]["template"]["spec"]["volumes"]
    assert cfg["model"] == "pvc://out/r/final" and cfg["host"] == "0.0.0.0"
    assert cfg["budget"] == {
        "max_thinking_tokens": 4096,
        "min_thinking_tokens": 0,
        "num_ignore": 2,
        "ignore_string": "Wait",
        "final_answer_prefix": "Final Answer:",
    }
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 1}}


def test_a_changed_config_rolls_the_pods():
    def config_hash(**spec):
        return children(**spec)[0]["spec"]["template"]["metadata"]["annotations"]["thinkube.dev/config-hash"]

    assert config_hash() == config_hash()
    assert config_hash() != config_hash(budget={"numIgnore": 1})


def test_engine_and_budget_forcing_mode_reach_the_server():
    assert (children()[2]["engine"], children(engine="demo-teacher", gpus=0)[2]["engine"]) == ("auto", "demo-teacher")
    assert (children()[2]["budget_forcing"], children(budgetForcing="resubmit")[2]["budget_forcing"]) == (
        "engine",
        "resubmit",
    )


def test_no_cap_means_no_max():
    assert "max_thinking_tokens" not in children()[2]["budget"]


def test_health_probes_with_a_long_startup_window():
    c = container(children(startupTimeoutSeconds=3600)[0])
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 3600
    assert c["readinessProbe"]["httpGet"]["path"] == c["livenessProbe"]["httpGet"]["path"] == "/health"


def test_model_claim_is_mounted():
    volumes = children()[0]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "out"}} in volumes


def test_replicas_unset_or_autoscaled_are_left_to_settle_and_suspend_is_zero():
    assert children()[0]["spec"]["replicas"] is None
    assert children(replicas=3)[0]["spec"]["replicas"] == 3
    assert children(replicas=3, autoscaling=True)[0]["spec"]["replicas"] is None
    assert children(replicas=3, suspend=True)[0]["spec"]["replicas"] == 0


def test_service_selects_the_pods_and_queue_label_reaches_them():
    deployment, service, cfg = children(queueName="q", port=8080)
    assert service["metadata"]["name"] == "s" and service["spec"]["ports"][0]["port"] == 8080 == cfg["port"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"


def test_gpus_are_the_tensor_parallel_size_and_reach_vllm(tmp_path):
    deployment, _, cfg = children(gpus=4)
    assert cfg["tensor_parallel_size"] == 4
    assert container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert children(gpus=0)[2]["tensor_parallel_size"] == 1

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    from thinkube.cli import build_parser
    from thinkube.workloads.serving.cli import build_engine, resolve_config

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**cfg, "model": "tiny", "engine": "vllm"}))
    args = build_parser().parse_args(["serve", "--config", str(path)])
    assert build_engine(resolve_config(args))._args["tensor_parallel_size"] == 4  # what AsyncEngineArgs receives


@pytest.mark.parametrize(
    "uri, budget_s",
    [
        ("hf://Qwen/Qwen2.5-32B-Instruct", 600 + 32 * 60),
        ("hf://Qwen/Qwen2.5-0.5B-Instruct@main", 600 + 30),
        ("pvc://out/r/final", 1800),
    ],
)
def test_the_startup_budget_follows_the_model_size_its_name_states(uri, budget_s):
    body = {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": "BudgetForcedServer",
        "metadata": {"name": "s", "namespace": "ns", "uid": "u"},
        "spec": {"model": {"uri": uri}},
    }
    _, deployment, _ = build(body, Resolved(input_uri=uri), Defaults(image="img:1"))
    probe = container(deployment)["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == budget_s
