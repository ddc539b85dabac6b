"""BudgetForcedServer -> Deployment + Service running `thinkube serve`."""
from __future__ import annotations

import importlib.util

import pytest

from thinkube.operator.builders import Defaults, Resolved
from thinkube.operator.builders.server import build


def children(**spec):
    body = {"apiVersion": "thinkube.dev/v1alpha1", "kind": "BudgetForcedServer",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u"}, "spec": {"model": {"fromSFTRun": "r"}, **spec}}
    return build(body, Resolved(input_uri="pvc://out/r/final"), Defaults(image="img:1"))


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_deployment_runs_thinkube_serve_with_the_budget_defaults():
    deployment, _ = children(budget={"maxThinkingTokens": 4096, "numIgnore": 2})
    c = container(deployment)
    assert c["command"] == ["thinkube", "serve"]
    args = dict(zip(c["args"][::2], c["args"][1::2]))
    assert args["--model"] == "pvc://out/r/final" and args["--host"] == "0.0.0.0"
    assert (args["--max-thinking-tokens"], args["--min-thinking-tokens"], args["--num-ignore"]) == ("4096", "0", "2")
    assert (args["--ignore-string"], args["--final-answer-prefix"]) == ("Wait", "Final Answer:")
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 1}}


def test_the_engine_reaches_thinkube_serve():
    args = container(children(engine="demo-teacher", gpus=0)[0])["args"]
    assert args[args.index("--engine") + 1] == "demo-teacher"


def test_budget_forcing_mode_reaches_the_server():
    def mode(**spec):
        args = container(children(**spec)[0])["args"]
        return args[args.index("--budget-forcing") + 1]

    assert (mode(), mode(budgetForcing="resubmit")) == ("engine", "resubmit")


def test_no_cap_means_no_max_flag():
    assert "--max-thinking-tokens" not in container(children()[0])["args"]


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
    deployment, service = children(queueName="q", port=8080)
    assert service["metadata"]["name"] == "s" and service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"


def test_gpus_are_the_tensor_parallel_size_and_reach_vllm():
    c = container(children(gpus=4)[0])
    assert c["args"][c["args"].index("--tensor-parallel-size") + 1] == "4"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert "--tensor-parallel-size" not in container(children(gpus=1)[0])["args"]

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    from thinkube.cli import build_parser
    from thinkube.workloads.serving.cli import build_engine

    args = build_parser().parse_args(["serve", "--model", "tiny", "--engine", "vllm", "--tensor-parallel-size", "4"])
    assert build_engine(args)._args["tensor_parallel_size"] == 4  # what AsyncEngineArgs receives
