"""BudgetForcedServer -> Deployment + Service running `thinkube serve`."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from thinkube.api.resources import BudgetForcedServer
from thinkube.api.resources.common import Phase
from thinkube.api.stages.serve import ServeConfig, ServeSettings
from thinkube.constants import ANNOTATION_CONFIG_HASH, CONFIG_FILE
from thinkube.operator import conditions as cond
from thinkube.operator.inputs import Input, Reference
from thinkube.operator.kinds import common as c
from thinkube.operator.kinds.kind import Kind
from thinkube.operator.observe import Observed

ROLE = "serve"
HEALTH = "/health"  # 503 while the model loads, 200 once it can serve (thinkube.workloads.serving.app)
STARTUP_PERIOD_S = 10
# The startup budget when the spec sets none: 10 minutes plus 1 per billion parameters the
# model's name states (Qwen2.5-32B-Instruct: 42 minutes), 30 minutes when it states none.
PARAMETERS_IN_NAME = re.compile(r"(?i)(?<![0-9.])(\d+(?:\.\d+)?)b(?![a-z])")
BASE_BUDGET_S, PER_BILLION_S, UNKNOWN_SIZE_BUDGET_S = 600, 60, 1800


def endpoint(server: BudgetForcedServer) -> str:
    """Base URL inside the cluster; the OpenAI API is under /v1."""
    return f"http://{server.metadata.name}.{server.metadata.namespace}.svc:{server.spec.port}"


def stage_config(server: BudgetForcedServer, model_uri: str) -> ServeConfig:
    """The `thinkube serve` config: the spec's settings, the model, and the pod's GPUs as the
    tensor-parallel size (they shard one model copy)."""
    s = server.spec
    return ServeConfig(
        **s.model_dump(include=set(ServeSettings.model_fields)),
        model=model_uri,
        host="0.0.0.0",
        tensor_parallel_size=max(1, s.gpus),
    )


def replicas(server: BudgetForcedServer) -> int | None:
    """Desired Deployment replicas; None means "not ours to set" (see builders.settle)."""
    s = server.spec
    if s.suspend:
        return 0
    return None if s.autoscaling or s.replicas is None else s.replicas


def startup_budget_s(server: BudgetForcedServer, model_uri: str) -> int:
    """How long the pod may take to download and load its model: the spec's, else from the size
    the model's name states (a 32B model's 64 GB take minutes to download and minutes to load)."""
    if server.spec.startup_timeout_seconds is not None:
        return server.spec.startup_timeout_seconds
    size = PARAMETERS_IN_NAME.search(model_uri.rsplit("/", 1)[-1])
    if size is None:
        return UNKNOWN_SIZE_BUDGET_S
    return BASE_BUDGET_S + math.ceil(float(size.group(1)) * PER_BILLION_S)


def probes(server: BudgetForcedServer, model_uri: str) -> dict:
    http = {"httpGet": {"path": HEALTH, "port": "http"}}
    # The startup probe holds liveness off until the model has loaded.
    return {
        "startupProbe": {
            **http,
            "periodSeconds": STARTUP_PERIOD_S,
            "failureThreshold": math.ceil(startup_budget_s(server, model_uri) / STARTUP_PERIOD_S),
        },
        "readinessProbe": {**http, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**http, "periodSeconds": 10, "failureThreshold": 6, "timeoutSeconds": 5},
    }


def build(body: Mapping, resolved: c.Resolved, defaults: c.Defaults) -> list[dict]:
    server = BudgetForcedServer.model_validate(body)
    s, name = server.spec, server.metadata.name
    assert resolved.input_uri is not None  # the reconciler builds only once the model is resolved
    labels = c.labels(server.kind, name, ROLE)
    volumes, mounts = c.pvc_volumes([resolved.input_uri])
    cfg_volume, cfg_mount = c.config_volume(name)
    config = stage_config(server, resolved.input_uri)
    model_env, model_volumes, model_mounts = c.model_access(defaults)
    shm_volume, shm_mount = c.shm_volume(None)
    container = {
        "name": ROLE,
        "image": c.image(s, defaults),
        "command": ["thinkube", "serve"],
        "env": [*c.base_env(), c.config_env(CONFIG_FILE), *model_env],
        "ports": [{"name": "http", "containerPort": s.port}],
        "resources": c.container_resources(s, s.gpu_resource or defaults.gpu_resource, s.gpus),
        "volumeMounts": [cfg_mount, shm_mount, *mounts, *model_mounts],
        **probes(server, resolved.input_uri),
    }
    pod_labels = {**labels, **c.kueue_labels(s)}
    deployment_spec = {
        "replicas": replicas(server),
        "selector": {"matchLabels": labels},
        # The config's hash in the template: a changed config rolls the pods, as changed args would.
        "template": {
            "metadata": {"labels": pod_labels, "annotations": {ANNOTATION_CONFIG_HASH: c.config_hash(config)}},
            "spec": c.pod_spec(s, defaults, container, [cfg_volume, shm_volume, *volumes, *model_volumes], s.gpus),
        },
    }
    return [
        c.config_map(body, name, ROLE, {CONFIG_FILE: config}),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": c.metadata(body, name, ROLE, c.kueue_labels(s)),
            "spec": deployment_spec,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": c.metadata(body, name, ROLE),
            "spec": {"selector": labels, "ports": [{"name": "http", "port": s.port, "targetPort": "http"}]},
        },
    ]


def observe(bfs: BudgetForcedServer, children: dict[str, dict], attempt: int) -> Observed:
    live = children.get("Deployment")
    fields = {"endpoint": endpoint(bfs), "selector": c.selector(bfs.kind, bfs.metadata.name, ROLE)}
    if live is None:
        return Observed(Phase.PENDING, "Creating", "creating the Deployment", fields)
    status = live.get("status") or {}
    want, ready = live["spec"].get("replicas", 1), status.get("readyReplicas", 0)
    fields |= {"replicas": status.get("replicas", 0), "readyReplicas": ready, "ready": f"{ready}/{want}"}
    if bfs.spec.suspend:
        return Observed(Phase.SUSPENDED, "Suspended", "spec.suspend is true: scaled to 0", fields)
    progressing: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Progressing"), {})
    if progressing.get("status") == "False":
        return Observed(
            Phase.FAILED, progressing.get("reason", "ProgressDeadlineExceeded"), progressing.get("message", ""), fields
        )
    if ready:
        return Observed(Phase.READY, "Serving", f"{ready}/{want} pods ready", fields)
    return Observed(Phase.PENDING, "Starting", "waiting for a pod to pass its /health startup probe", fields)


def reference(server: BudgetForcedServer) -> Reference | None:
    name = server.spec.model.from_sft_run
    return Reference("SFTRun", name, "spec.model.fromSFTRun") if name else None


def as_model_endpoint(found: Input, referenced: Mapping | None) -> Input:
    """A Ready server as the URL@MODEL a CurationJob calls: its endpoint and the model it serves."""
    if found.uri is None:
        return found
    assert referenced is not None  # found.uri was read from it
    model = referenced["spec"].get("servedModelName") or referenced["status"].get("inputUri")
    return Input(uri=f"{found.uri}@{model}")


KIND = Kind(
    BudgetForcedServer,
    build,
    observe,
    reference,
    literal=lambda server: server.spec.model.uri,
    offered=lambda status: status.get("endpoint"),
    ready=Phase.READY,
    primary=cond.READY,
)
