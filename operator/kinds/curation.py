"""CurationJob: a ConfigMap and a Job running `thinkube curate`; offers its selected dataset."""

from __future__ import annotations

from typing import Mapping

from thinkube.api.resources import CurationJob
from thinkube.api.resources.common import Phase
from thinkube.api.resources.curation import TeacherSpec
from thinkube.api.stages.curate import SELECTED_JSONL, CurateConfig, CurateSettings, TeacherConfig, TeacherSettings
from thinkube.constants import CONFIG_FILE, ENV_TEACHER_API_KEY
from thinkube.operator import conditions as cond
from thinkube.operator.inputs import Served, output_inside
from thinkube.operator.kinds import common as c
from thinkube.operator.kinds.kind import Kind
from thinkube.operator.observe import Observed, job

ROLE = "curate"


def child_name(name: str) -> str:
    return f"{name}-{ROLE}"


def stage_config(cj: CurationJob, resolved: c.Resolved) -> CurateConfig:
    """The `thinkube curate` config: the spec's settings, with server names resolved to URL@MODEL."""
    s = cj.spec
    assert resolved.output_uri is not None  # the reconciler gives every run an output
    settings = s.model_dump(include=set(CurateSettings.model_fields) - {"teacher"})
    settings["base_models"] = list(resolved.base_models or s.base_models)
    return CurateConfig(**settings, out=resolved.output_uri, teacher=teacher_config(s.teacher, resolved.teacher))


def teacher_config(t: TeacherSpec | None, endpoint: str | None) -> TeacherConfig | None:
    """The resolved URL@MODEL and the name, never the value, of the API key's variable."""
    if t is None:
        return None
    return TeacherConfig(
        **t.model_dump(include=set(TeacherSettings.model_fields)),
        endpoint=endpoint or t.endpoint,
        api_key_env=ENV_TEACHER_API_KEY,
    )


def teacher_env(t: TeacherSpec | None) -> list[dict]:
    """The teacher's API key from its Secret, filled in by the kubelet (the operator never reads it)."""
    if t is None or t.api_key_secret is None:
        return []
    return [c.secret_env(ENV_TEACHER_API_KEY, t.api_key_secret.name, t.api_key_secret.key)]


def build(body: Mapping, resolved: c.Resolved, defaults: c.Defaults) -> list[dict]:
    cj = CurationJob.model_validate(body)
    name = child_name(cj.metadata.name)
    s = cj.spec
    volumes, mounts = c.pvc_volumes([*s.pools.values(), *s.decontaminate.values(), s.tokenizer, resolved.output_uri])
    cfg_volume, cfg_mount = c.config_volume(name)
    container = {
        "name": ROLE,
        "image": c.image(s, defaults),
        "command": ["thinkube", "curate"],
        "env": [*c.base_env(), c.config_env(CONFIG_FILE), *teacher_env(s.teacher)],
        "resources": c.container_resources(s),
        "volumeMounts": [cfg_mount, *mounts],
    }
    pod = c.pod_spec(s, defaults, container, [cfg_volume, *volumes])
    labels = c.labels(cj.kind, cj.metadata.name, ROLE)
    return [
        c.config_map(body, name, ROLE, {CONFIG_FILE: stage_config(cj, resolved)}),
        c.job(body, s, name, ROLE, pod, pod_labels=labels, backoffLimit=s.max_retries),
    ]


def endpoints(cj: CurationJob) -> list[tuple[str, str]]:
    """(field, value) of every endpoint that may name a BudgetForcedServer instead of a URL@MODEL."""
    found = [(f"spec.baseModels[{i}]", m) for i, m in enumerate(cj.spec.base_models)]
    if cj.spec.teacher:
        found.append(("spec.teacher.endpoint", cj.spec.teacher.endpoint))
    return found


def served(cj: CurationJob, servers: Mapping[str, str]) -> Served:
    """The endpoints with server names replaced by `servers` (name -> URL@MODEL)."""
    s = cj.spec
    return Served(
        tuple(servers.get(m, m) for m in s.base_models),
        servers.get(s.teacher.endpoint, s.teacher.endpoint) if s.teacher else None,
    )


def served_before(cj: CurationJob, status: Mapping) -> dict[str, str]:
    """Server name -> URL@MODEL as an earlier reconcile resolved them (status.baseModels, status.teacher)."""
    pairs = list(zip(cj.spec.base_models, status.get("baseModels") or []))
    if cj.spec.teacher and status.get("teacher"):
        pairs.append((cj.spec.teacher.endpoint, status["teacher"]))
    return {name: uri for name, uri in pairs if "://" not in name}


def observe(cj: CurationJob, children: dict[str, dict], attempt: int) -> Observed:
    return job(cj.spec, children.get("Job"))


KIND = Kind(
    CurationJob,
    build,
    observe,
    reference=lambda cj: None,
    literal=lambda cj: ", ".join(cj.spec.pools.values()),
    offered=output_inside(SELECTED_JSONL),
    ready=Phase.SUCCEEDED,
    primary=cond.COMPLETE,
    endpoints=endpoints,
    served=served,
    served_before=served_before,
)
