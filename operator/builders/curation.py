"""CurationJob -> ConfigMap + Job running `thinkube curate`."""
from __future__ import annotations

from typing import Mapping

from thinkube.api.resources import CurationJob
from thinkube.api.resources.curation import TeacherSpec
from thinkube.constants import CONFIG_FILE, ENV_TEACHER_API_KEY
from thinkube.operator.builders import common as c

ROLE = "curate"


def child_name(name: str) -> str:
    return f"{name}-{ROLE}"


def stage_config(cj: CurationJob, resolved: c.Resolved) -> dict:
    """The `thinkube curate` config file: CurateConfig's own keys."""
    config = {**cj.spec.model_dump(include=set(cj.spec.CONFIG_KEYS), exclude_none=True), "out": resolved.output_uri}
    if resolved.base_models:
        config["base_models"] = list(resolved.base_models)
    if cj.spec.teacher:
        config["teacher"] = teacher_config(cj.spec.teacher, resolved.teacher)
    return config


def teacher_config(t: TeacherSpec, endpoint: str | None) -> dict:
    """CurateConfig.teacher: the resolved URL@MODEL and the name, never the value, of the key's variable."""
    return {**t.model_dump(exclude={"endpoint", "api_key_secret", "timeout_seconds"}, exclude_none=True),
            "endpoint": endpoint or t.endpoint, "api_key_env": ENV_TEACHER_API_KEY, "timeout_s": t.timeout_seconds}


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
        "name": ROLE, "image": c.image(s, defaults),
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
