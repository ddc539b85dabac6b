"""EvalSweep -> ConfigMap + Indexed Job running `thinkube eval`, one index per benchmark.

Each index reads its own config file, picked through its completion index, and writes to
<outputUri>/<benchmark>; `parallelism` bounds how many benchmarks run at once and
backoffLimitPerIndex retries a benchmark without rerunning the others.
"""

from __future__ import annotations

from typing import Mapping

from thinkube.api.resources import EvalSweep
from thinkube.api.resources.common import Phase
from thinkube.api.stages.evaluate import EvalConfig, EvalSettings
from thinkube.constants import ANNOTATION_JOB_COMPLETION_INDEX, ENV_JOB_COMPLETION_INDEX
from thinkube.operator import conditions as cond
from thinkube.operator.inputs import Reference
from thinkube.operator.kinds import common as c
from thinkube.operator.kinds.kind import Kind
from thinkube.operator.observe import Observed, count_indexes, job

ROLE = "eval"


def child_name(name: str) -> str:
    return f"{name}-{ROLE}"


def config_file(index: int | str) -> str:
    return f"benchmark-{index}.json"


def stage_configs(sweep: EvalSweep, resolved: c.Resolved) -> dict[str, EvalConfig]:
    """One `thinkube eval` config per benchmark, keyed by file name."""
    s = sweep.spec
    settings = s.model_dump(include=set(EvalSettings.model_fields))
    return {
        config_file(i): EvalConfig(
            **settings,
            target=resolved.input_uri,
            model=s.target.model,
            benchmarks={b.name: b.uri},
            out=f"{resolved.output_uri}/{b.name}",
            limit=b.limit,
            progress=False,
        )  # a progress bar only garbles pod logs
        for i, b in enumerate(s.benchmarks)
    }


def build(body: Mapping, resolved: c.Resolved, defaults: c.Defaults) -> list[dict]:
    sweep = EvalSweep.model_validate(body)
    s, name = sweep.spec, child_name(sweep.metadata.name)
    volumes, mounts = c.pvc_volumes([resolved.output_uri, *(b.uri for b in s.benchmarks)])
    cfg_volume, cfg_mount = c.config_volume(name)
    container = {
        "name": ROLE,
        "image": c.image(s, defaults),
        "command": ["thinkube", "eval"],
        "env": [
            *c.base_env(),
            # Declared before the config path that expands it (the Job controller would add
            # it too, but after our variables, too late for $(...) expansion).
            {
                "name": ENV_JOB_COMPLETION_INDEX,
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_JOB_COMPLETION_INDEX}']"}},
            },
            c.config_env(config_file(f"$({ENV_JOB_COMPLETION_INDEX})")),
        ],
        "resources": c.container_resources(s),
        "volumeMounts": [cfg_mount, *mounts],
    }
    pod = c.pod_spec(s, defaults, container, [cfg_volume, *volumes])
    n = len(s.benchmarks)
    return [
        c.config_map(body, name, ROLE, stage_configs(sweep, resolved)),
        c.job(
            body,
            s,
            name,
            ROLE,
            pod,
            pod_labels=c.labels(sweep.kind, sweep.metadata.name, ROLE),
            bad_config_action="FailIndex",
            completionMode="Indexed",
            completions=n,
            parallelism=min(s.parallelism, n),
            backoffLimitPerIndex=s.max_retries,
        ),
    ]


def observe(sweep: EvalSweep, children: dict[str, dict], attempt: int) -> Observed:
    live = children.get("Job")
    o = job(sweep.spec, live)
    status = (live or {}).get("status") or {}
    n = len(sweep.spec.benchmarks)
    ok, bad = count_indexes(status.get("completedIndexes")), count_indexes(status.get("failedIndexes"))
    fields = {"progress": f"{ok + bad}/{n}", "results": {"benchmarks": n, "succeeded": ok, "failed": bad}}
    return Observed(o.phase, o.reason, o.message, fields)


def reference(sweep: EvalSweep) -> Reference | None:
    name = sweep.spec.target.server_ref
    return Reference("BudgetForcedServer", name, "spec.target.serverRef") if name else None


# The last stage: its results are read by people, not by another kind.
KIND = Kind(
    EvalSweep,
    build,
    observe,
    reference,
    literal=lambda sweep: sweep.spec.target.url,
    offered=lambda status: status.get("outputUri"),
    ready=Phase.SUCCEEDED,
    primary=cond.COMPLETE,
)
