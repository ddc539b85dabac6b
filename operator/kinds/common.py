"""Pieces every child manifest shares: names, labels, owner, scheduling, volumes, config, Jobs.

Everything here is a pure function of plain dicts and the pydantic spec: no API calls, so
each builder's output can be checked in unit tests field by field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pydantic import BaseModel

from thinkube.api.resources.common import GPU_RESOURCE, JobSpec, WorkloadSpec
from thinkube.constants import (
    CONFIG_MOUNT_DIR,
    DEFAULT_PVC_ROOT,
    ENV_CONFIG,
    ENV_HF_HOME,
    ENV_HF_TOKEN,
    ENV_PVC_ROOT,
    EXIT_BAD_CONFIG,
    LABEL_KIND,
    LABEL_KUEUE_QUEUE,
    LABEL_NAME,
    LABEL_ROLE,
    MODEL_CACHE_DIR,
    PROGRESS_AUDIENCE,
)

CONFIG_VOLUME = "config"


@dataclass(frozen=True)
class Defaults:
    """What the operator fills in where a resource leaves it out (flags of `thinkube operator`)."""

    image: str
    artifacts_pvc: str | None = None  # default outputs go to pvc://<this>/<plural>/<namespace>/<name>
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    # Added to pods that request GPUs.
    gpu_resource: str = GPU_RESOURCE
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    gpu_tolerations: tuple[Mapping[str, Any], ...] = ()
    gpu_runtime_class: str | None = None
    # Model downloads (hf://) go to this PVC, shared by every server and training pod.
    model_cache_pvc: str | None = None
    hf_token_secret: tuple[str, str] | None = None  # (Secret name, key): HF_TOKEN, never in args
    # The control plane's base URL: training pods report their progress there.
    api_url: str | None = None
    api_audience: str = PROGRESS_AUDIENCE  # of the tokens those pods report with


@dataclass(frozen=True)
class Resolved:
    """What the reconciler found out before building: the input, the output, the attempt."""

    input_uri: str | None = None  # dataset, model or endpoint, after following references
    output_uri: str | None = None
    attempt: int = 0  # SFTRun whole-gang attempt
    base_models: tuple[str, ...] = ()  # CurationJob: spec.baseModels with server names resolved to URL@MODEL
    teacher: str | None = None  # CurationJob: spec.teacher.endpoint, a server name resolved to URL@MODEL


def labels(kind: str, name: str, role: str | None = None) -> dict[str, str]:
    """The labels every child of a run carries; without a role, the ones all its children share."""
    return {LABEL_KIND: kind, LABEL_NAME: name, **({LABEL_ROLE: role} if role else {})}


def selector(kind: str, name: str, role: str | None = None) -> str:
    """The same labels as a label-selector string."""
    return ",".join(f"{k}={v}" for k, v in labels(kind, name, role).items())


def owner_reference(body: Mapping) -> dict:
    # controller=true: `kubectl get` shows the owner and the garbage collector deletes the
    # child with it; blockOwnerDeletion keeps foreground deletion ordered.
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(body: Mapping, name: str, role: str, extra_labels: Mapping[str, str] | None = None) -> dict:
    return {
        "name": name,
        "namespace": body["metadata"]["namespace"],
        "labels": {**labels(body["kind"], body["metadata"]["name"], role), **(extra_labels or {})},
        "ownerReferences": [owner_reference(body)],
    }


def kueue_labels(spec: WorkloadSpec) -> dict[str, str]:
    return {LABEL_KUEUE_QUEUE: spec.queue_name} if spec.queue_name else {}


def job_suspend(spec: WorkloadSpec) -> bool | None:
    """Desired Job `spec.suspend`; None means "not ours to set" (see builders.settle).

    With a Kueue queue, Kueue admits a Job by unsuspending it, so the operator only ever
    suspends (on user request) and otherwise leaves the field to Kueue.
    """
    if spec.suspend:
        return True
    return None if spec.queue_name else False


def scheduling(spec: WorkloadSpec, defaults: Defaults, gpus: int = 0) -> dict:
    """nodeSelector and tolerations: the resource's own, else the operator's; plus the GPU ones for GPU pods."""
    out: dict[str, Any] = {}
    node_selector = spec.node_selector or dict(defaults.node_selector)
    tolerations = [t.wire() for t in spec.tolerations] or [dict(t) for t in defaults.tolerations]
    if gpus:
        node_selector = {**defaults.gpu_node_selector, **node_selector}
        tolerations += [dict(t) for t in defaults.gpu_tolerations if dict(t) not in tolerations]
        if defaults.gpu_runtime_class:
            out["runtimeClassName"] = defaults.gpu_runtime_class
    if node_selector:
        out["nodeSelector"] = node_selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def image(spec: WorkloadSpec, defaults: Defaults) -> str:
    return spec.image or defaults.image


def container_resources(spec: WorkloadSpec, gpu_resource: str = GPU_RESOURCE, gpus: int = 0) -> dict:
    """spec.resources plus the GPU count (a limit; Kubernetes sets the request equal for extended resources)."""
    out = spec.resources.wire() if spec.resources else {}
    out = {k: dict(v) for k, v in out.items() if v}
    if gpus:
        out.setdefault("limits", {})[gpu_resource] = gpus
    return out


def model_access(defaults: Defaults) -> tuple[list[dict], list[dict], list[dict]]:
    """Env, volumes and mounts through which model pods share downloads and read the hub token."""
    env_vars, volumes, mounts = [], [], []
    if defaults.model_cache_pvc:
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": defaults.model_cache_pvc}})
        mounts.append({"name": "model-cache", "mountPath": MODEL_CACHE_DIR})
        env_vars.append(env(ENV_HF_HOME, MODEL_CACHE_DIR))
    if defaults.hf_token_secret:
        env_vars.append(secret_env(ENV_HF_TOKEN, *defaults.hf_token_secret))
    return env_vars, volumes, mounts


def claims(uris: Iterable[str | None]) -> list[str]:
    """PVC claim names referenced by pvc:// URIs, each once, in a stable order."""
    found = {u[len("pvc://") :].split("/", 1)[0] for u in uris if u and u.startswith("pvc://")}
    return sorted(found)


def pvc_volumes(uris: Iterable[str | None]) -> tuple[list[dict], list[dict]]:
    """Volumes and mounts for every claim the URIs name, at <THINKUBE_PVC_ROOT>/<claim>.

    thinkube.workloads.uris maps pvc://<claim>/<path> to that same folder, so the workload
    reads the URIs unchanged.
    """
    volumes, mounts = [], []
    for i, claim in enumerate(claims(uris)):
        volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"pvc-{i}", "mountPath": f"{DEFAULT_PVC_ROOT}/{claim}"})
    return volumes, mounts


def shm_volume(size: int | str | None) -> tuple[dict, dict]:
    """/dev/shm in memory: NCCL and PyTorch data loaders outgrow the runtime's 64 MiB default."""
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    if size is not None:
        empty_dir["sizeLimit"] = size
    return {"name": "dshm", "emptyDir": empty_dir}, {"name": "dshm", "mountPath": "/dev/shm"}


def config_file(config: BaseModel) -> str:
    """A stage config as the JSON file its command reads (snake_case keys, unset fields left out)."""
    return json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True) + "\n"


def config_hash(config: BaseModel) -> str:
    return hashlib.sha256(config_file(config).encode()).hexdigest()[:16]


def config_map(body: Mapping, name: str, role: str, files: Mapping[str, BaseModel]) -> dict:
    """A ConfigMap holding each stage config as a JSON file (the workloads read YAML/JSON)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(body, name, role),
        "data": {fname: config_file(doc) for fname, doc in files.items()},
    }


def config_volume(config_map_name: str) -> tuple[dict, dict]:
    return (
        {"name": CONFIG_VOLUME, "configMap": {"name": config_map_name}},
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT_DIR, "readOnly": True},
    )


def env(name: str, value: str) -> dict:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str) -> dict:
    """An environment variable the kubelet fills from a Secret key: the value never passes
    through the operator (which cannot read Secrets) nor sits in the pod spec."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def base_env() -> list[dict]:
    return [env(ENV_PVC_ROOT, DEFAULT_PVC_ROOT)]


def config_env(file_name: str) -> dict:
    return env(ENV_CONFIG, f"{CONFIG_MOUNT_DIR}/{file_name}")


def pod_spec(
    spec: WorkloadSpec, defaults: Defaults, container: dict, volumes: list[dict], gpus: int = 0, **extra: Any
) -> dict:
    return {"containers": [container], "volumes": volumes, **scheduling(spec, defaults, gpus), **extra}


def job(
    body: Mapping,
    spec: JobSpec,
    name: str,
    role: str,
    pod: dict,
    *,
    pod_labels: Mapping[str, str],
    bad_config_action: str = "FailJob",
    **job_fields: Any,
) -> dict:
    """A batch/v1 Job whose pods never restart in place (the Job or the operator retries them).

    podFailurePolicy: a workload exiting EXIT_BAD_CONFIG fails at once (retrying a wrong
    config can't help); a pod evicted or preempted (DisruptionTarget) doesn't count against
    the retry budget.
    """
    job_spec = {
        "suspend": job_suspend(spec),
        "podFailurePolicy": {
            "rules": [
                {"action": bad_config_action, "onExitCodes": {"operator": "In", "values": [EXIT_BAD_CONFIG]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
        **job_fields,
        "template": {"metadata": {"labels": dict(pod_labels)}, "spec": {"restartPolicy": "Never", **pod}},
    }
    if spec.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(body, name, role, {**pod_labels, **kueue_labels(spec)}),
        "spec": job_spec,
    }
