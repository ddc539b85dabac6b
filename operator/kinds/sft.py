"""SFTRun -> ConfigMap + headless Service + Indexed Job of torchrun pods (one per node with GPUs).

Whole-gang restart: the Job has backoffLimit 0, so any failed pod fails the Job and the
Job controller stops the other pods; the reconciler then starts the next attempt as a new
Job (`<name>-train-r<N>`), up to spec.maxRestarts. A fresh Job, not a retried pod, because
torchrun's static rendezvous needs every rank to start over together.
"""

from __future__ import annotations

from typing import Mapping

from thinkube.api.resources import SFTRun
from thinkube.api.resources.common import Phase
from thinkube.api.stages.train import FINAL_MODEL_DIR, TrainConfig
from thinkube.constants import (
    ANNOTATION_JOB_COMPLETION_INDEX,
    CONFIG_FILE,
    ENV_MASTER_ADDR,
    ENV_MASTER_PORT,
    ENV_NNODES,
    ENV_NODE_RANK,
    ENV_NPROC_PER_NODE,
    ENV_PROGRESS_TOKEN_FILE,
    ENV_PROGRESS_URL,
    LABEL_ATTEMPT,
    LABEL_HOSTNAME,
    PROGRESS_TOKEN_DIR,
    PROGRESS_TOKEN_FILE,
)
from thinkube.operator import conditions as cond
from thinkube.operator import gang
from thinkube.operator.inputs import Reference, output_inside
from thinkube.operator.kinds import common as c
from thinkube.operator.kinds.kind import Kind
from thinkube.operator.observe import POD_FAILURE_POLICY, Observed, job

ROLE = "train"
PROGRESS_TOKEN_VOLUME = "progress-token"
PROGRESS_TOKEN_SECONDS = 3600  # the kubelet refreshes the token well before it expires


def service_name(name: str) -> str:
    return f"{name}-{ROLE}"


def job_name(name: str, attempt: int) -> str:
    return f"{name}-{ROLE}" if attempt == 0 else f"{name}-{ROLE}-r{attempt}"


def procs_per_node(run: SFTRun) -> int:
    return run.spec.gpus_per_node or 1  # CPU: one process per pod


def stage_config(run: SFTRun, resolved: c.Resolved) -> TrainConfig:
    """The `thinkube train` config: the run's recipe, its model, its data and its output."""
    # The reconciler builds only once the dataset is resolved, and gives every run an output.
    assert resolved.input_uri is not None and resolved.output_uri is not None
    return TrainConfig(
        **run.spec.training.model_dump(),
        model=run.spec.base_model,
        dataset=resolved.input_uri,
        output=resolved.output_uri,
    )


def torchrun_command() -> list[str]:
    # $(VAR) is expanded by the kubelet from the container's env, so one template serves every rank.
    return [
        "torchrun",
        f"--nnodes=$({ENV_NNODES})",
        f"--nproc-per-node=$({ENV_NPROC_PER_NODE})",
        f"--node-rank=$({ENV_NODE_RANK})",
        f"--master-addr=$({ENV_MASTER_ADDR})",
        f"--master-port=$({ENV_MASTER_PORT})",
        "-m",
        "thinkube.cli",
        "train",
    ]


def rendezvous_env(run: SFTRun, job: str, service: str) -> list[dict]:
    return [
        # Pod 0's stable DNS name: Indexed Job pods get hostname <job>-<index>, and the
        # headless Service (the pods' subdomain) publishes it before the pod is ready.
        c.env(ENV_MASTER_ADDR, f"{job}-0.{service}"),
        c.env(ENV_MASTER_PORT, str(run.spec.master_port)),
        c.env(ENV_NNODES, str(run.spec.nodes)),
        c.env(ENV_NPROC_PER_NODE, str(procs_per_node(run))),
        {
            "name": ENV_NODE_RANK,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_JOB_COMPLETION_INDEX}']"}},
        },
    ]


def one_pod_per_node(run: SFTRun) -> dict:
    """A required pod anti-affinity that keeps the run's ranks on different nodes.

    Only with GPUs: each rank is sized to a node's GPUs (--nproc-per-node), and two on one node
    would fight over them. CPU ranks (gpusPerNode 0) are one process each and may share a node,
    so a CPU run also fits a cluster smaller than spec.nodes.
    """
    if not run.spec.gpus_per_node:
        return {}
    return {
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": c.labels(run.kind, run.metadata.name)},
                        "topologyKey": LABEL_HOSTNAME,
                    }
                ]
            }
        }
    }


def progress_reporting(run: SFTRun, defaults: c.Defaults) -> tuple[list[dict], list[dict], list[dict]]:
    """Env, volume and mount through which rank 0 reports progress to the control plane.

    A projected service-account token for the control plane's audience only: it proves
    which pod is reporting, and is worthless to any other service.
    """
    if not defaults.api_url:
        return [], [], []
    ns, name = run.metadata.namespace, run.metadata.name
    url = f"{defaults.api_url.rstrip('/')}/v1/namespaces/{ns}/{run.names.plural}/{name}/progress"
    token = {
        "audience": defaults.api_audience,
        "expirationSeconds": PROGRESS_TOKEN_SECONDS,
        "path": PROGRESS_TOKEN_FILE,
    }
    return (
        [c.env(ENV_PROGRESS_URL, url), c.env(ENV_PROGRESS_TOKEN_FILE, f"{PROGRESS_TOKEN_DIR}/{PROGRESS_TOKEN_FILE}")],
        [{"name": PROGRESS_TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": token}]}}],
        [{"name": PROGRESS_TOKEN_VOLUME, "mountPath": PROGRESS_TOKEN_DIR, "readOnly": True}],
    )


def headless_service(body: Mapping, run: SFTRun) -> dict:
    name = service_name(run.metadata.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": c.metadata(body, name, ROLE),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # ranks must find pod 0 while it is still starting
            "selector": c.labels(run.kind, run.metadata.name, ROLE),
            "ports": [{"name": "rendezvous", "port": run.spec.master_port, "targetPort": run.spec.master_port}],
        },
    }


def build(body: Mapping, resolved: c.Resolved, defaults: c.Defaults) -> list[dict]:
    run = SFTRun.model_validate(body)
    s, name = run.spec, run.metadata.name
    job, service = job_name(name, resolved.attempt), service_name(name)
    volumes, mounts = c.pvc_volumes([s.base_model, resolved.input_uri, resolved.output_uri])
    cfg_volume, cfg_mount = c.config_volume(service)
    shm_volume, shm_mount = c.shm_volume(s.shm_size)
    model_env, model_volumes, model_mounts = c.model_access(defaults)
    report_env, report_volumes, report_mounts = progress_reporting(run, defaults)
    container = {
        "name": ROLE,
        "image": c.image(s, defaults),
        "command": torchrun_command(),
        "env": [*c.base_env(), c.config_env(CONFIG_FILE), *rendezvous_env(run, job, service), *model_env, *report_env],
        "ports": [{"name": "rendezvous", "containerPort": s.master_port}],
        "resources": c.container_resources(s, s.gpu_resource or defaults.gpu_resource, s.gpus_per_node),
        "volumeMounts": [cfg_mount, shm_mount, *mounts, *model_mounts, *report_mounts],
    }
    pod = c.pod_spec(
        s,
        defaults,
        container,
        [cfg_volume, shm_volume, *volumes, *model_volumes, *report_volumes],
        s.gpus_per_node,
        subdomain=service,
        **one_pod_per_node(run),
    )
    attempt = {LABEL_ATTEMPT: str(resolved.attempt)}
    return [
        c.config_map(body, service, ROLE, {CONFIG_FILE: stage_config(run, resolved)}),
        headless_service(body, run),
        c.job(
            body,
            s,
            job,
            ROLE,
            pod,
            pod_labels={**c.labels(run.kind, name, ROLE), **attempt},
            completionMode="Indexed",
            completions=s.nodes,
            parallelism=s.nodes,
            backoffLimit=0,
        ),
    ]


def observe(run: SFTRun, children: dict[str, dict], attempt: int) -> Observed:
    live = children.get("Job")
    o = job(run.spec, live)
    ready = ((live or {}).get("status") or {}).get("ready", 0)
    pods = {Phase.SUCCEEDED: "done", Phase.RUNNING: f"{ready}/{run.spec.nodes} pods ready"}.get(o.phase)
    fields = {
        "restarts": attempt,
        "jobName": (live or {}).get("metadata", {}).get("name"),
        "pods": pods,
        # Written by the control plane from the trainer's reports; kept as read, so the status
        # recomputed here neither drops it nor (unchanged, hence not in the patch) overwrites a newer one.
        "progress": run.status.progress.wire() if run.status.progress else None,
    }
    if o.phase == Phase.FAILED and o.reason != POD_FAILURE_POLICY:
        # The reconciler restarts the gang while restarts are left, so a failure seen here is final.
        o = Observed(
            o.phase,
            "RestartBudgetExhausted",
            f"attempt {attempt} failed ({o.reason}: {o.message}) "
            f"and the spec.maxRestarts={run.spec.max_restarts} restarts are used up",
        )
    return Observed(o.phase, o.reason, o.message, fields)


def reference(run: SFTRun) -> Reference | None:
    name = run.spec.dataset.from_curation_job
    return Reference("CurationJob", name, "spec.dataset.fromCurationJob") if name else None


KIND = Kind(
    SFTRun,
    build,
    observe,
    reference,
    literal=lambda run: run.spec.dataset.uri,
    offered=output_inside(FINAL_MODEL_DIR),
    ready=Phase.SUCCEEDED,
    primary=cond.COMPLETE,
    next_attempt=gang.next_attempt,
)
