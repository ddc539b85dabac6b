"""BudgetForcedServer -> Deployment + Service running `thinkube serve`."""
from __future__ import annotations

import math
from typing import Mapping

from thinkube.api.resources import BudgetForcedServer
from thinkube.operator.builders import common as c

ROLE = "serve"
HEALTH = "/health"  # 503 while the model loads, 200 once it can serve (thinkube.workloads.serving.app)
STARTUP_PERIOD_S = 10


def endpoint(server: BudgetForcedServer) -> str:
    """Base URL inside the cluster; the OpenAI API is under /v1."""
    return f"http://{server.metadata.name}.{server.metadata.namespace}.svc:{server.spec.port}"


def serve_args(server: BudgetForcedServer, model_uri: str) -> list[str]:
    """`thinkube serve` flags: the model, the engine and the server-wide budget defaults."""
    s = server.spec
    args = ["--model", model_uri, "--engine", s.engine, "--budget-forcing", s.budget_forcing,
            "--chat-format", s.chat_format,
            "--host", "0.0.0.0", "--port", str(s.port), "--max-model-len", str(s.max_model_len)]
    if s.gpus > 1:  # the pod's GPUs shard one model copy (spec.gpus is the tensor-parallel size)
        args += ["--tensor-parallel-size", str(s.gpus)]
    if s.served_model_name:
        args += ["--served-model-name", s.served_model_name]
    b = s.budget
    if b.max_thinking_tokens is not None:
        args += ["--max-thinking-tokens", str(b.max_thinking_tokens)]
    return args + ["--min-thinking-tokens", str(b.min_thinking_tokens), "--num-ignore", str(b.num_ignore),
                   "--ignore-string", b.ignore_string, "--final-answer-prefix", b.final_answer_prefix]


def replicas(server: BudgetForcedServer) -> int | None:
    """Desired Deployment replicas; None means "not ours to set" (see builders.settle)."""
    s = server.spec
    if s.suspend:
        return 0
    return None if s.autoscaling or s.replicas is None else s.replicas


def probes(server: BudgetForcedServer) -> dict:
    http = {"httpGet": {"path": HEALTH, "port": "http"}}
    # Loading a 32B model takes minutes: the startup probe holds liveness off until then.
    return {
        "startupProbe": {**http, "periodSeconds": STARTUP_PERIOD_S,
                         "failureThreshold": math.ceil(server.spec.startup_timeout_seconds / STARTUP_PERIOD_S)},
        "readinessProbe": {**http, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**http, "periodSeconds": 10, "failureThreshold": 6, "timeoutSeconds": 5},
    }


def build(body: Mapping, resolved: c.Resolved, defaults: c.Defaults) -> list[dict]:
    server = BudgetForcedServer.model_validate(body)
    s, name = server.spec, server.metadata.name
    labels = c.labels(server.kind, name, ROLE)
    volumes, mounts = c.pvc_volumes([resolved.input_uri])
    model_env, model_volumes, model_mounts = c.model_access(defaults)
    shm_volume, shm_mount = c.shm_volume(None)
    container = {
        "name": ROLE, "image": c.image(s, defaults),
        "command": ["thinkube", "serve"],
        "args": serve_args(server, resolved.input_uri),
        "env": [*c.base_env(), *model_env],
        "ports": [{"name": "http", "containerPort": s.port}],
        "resources": c.container_resources(s, s.gpu_resource or defaults.gpu_resource, s.gpus),
        "volumeMounts": [shm_mount, *mounts, *model_mounts],
        **probes(server),
    }
    pod_labels = {**labels, **c.kueue_labels(s)}
    deployment_spec = {
        "replicas": replicas(server),
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": pod_labels},
                     "spec": c.pod_spec(s, defaults, container, [shm_volume, *volumes, *model_volumes], s.gpus)},
    }
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": c.metadata(body, name, ROLE, c.kueue_labels(s)), "spec": deployment_spec},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": c.metadata(body, name, ROLE),
         "spec": {"selector": labels, "ports": [{"name": "http", "port": s.port, "targetPort": "http"}]}},
    ]
