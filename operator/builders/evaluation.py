"""EvalSweep -> ConfigMap + Indexed Job running `thinkube eval`, one index per benchmark.

Each index reads its own config file, picked through its completion index, and writes to
<outputUri>/<benchmark>; `parallelism` bounds how many benchmarks run at once and
backoffLimitPerIndex retries a benchmark without rerunning the others.
"""
from __future__ import annotations

from typing import Mapping

from thinkube.api.resources import EvalSweep
from thinkube.constants import ANNOTATION_JOB_COMPLETION_INDEX, ENV_JOB_COMPLETION_INDEX
from thinkube.operator.builders import common as c

ROLE = "eval"


def child_name(name: str) -> str:
    return f"{name}-{ROLE}"


def config_file(index: int | str) -> str:
    return f"benchmark-{index}.json"


def stage_configs(sweep: EvalSweep, resolved: c.Resolved) -> dict[str, dict]:
    """One `thinkube eval` config per benchmark, keyed by file name (the eval CLI's option names)."""
    s = sweep.spec
    shared = {"target": resolved.input_uri, "model": s.target.model, "max_thinking_tokens": s.max_thinking_tokens,
              "num_ignore": s.num_ignore, "combine": s.combine, "ignore_string": s.ignore_string,
              "final_answer_prefix": s.final_answer_prefix, "n": s.samples, "temperature": s.temperature,
              "seed": s.seed, "concurrency": s.concurrency, "max_tokens": s.max_tokens, "chat_format": s.chat_format,
              "no_progress": True}  # a progress bar only garbles pod logs
    configs = {}
    for i, b in enumerate(s.benchmarks):
        cfg = {**shared, "benchmark": {b.name: b.uri}, "out": f"{resolved.output_uri}/{b.name}", "limit": b.limit}
        configs[config_file(i)] = {k: v for k, v in cfg.items() if v is not None}
    return configs


def build(body: Mapping, resolved: c.Resolved, defaults: c.Defaults) -> list[dict]:
    sweep = EvalSweep.model_validate(body)
    s, name = sweep.spec, child_name(sweep.metadata.name)
    volumes, mounts = c.pvc_volumes([resolved.output_uri, *(b.uri for b in s.benchmarks)])
    cfg_volume, cfg_mount = c.config_volume(name)
    container = {
        "name": ROLE, "image": c.image(s, defaults),
        "command": ["thinkube", "eval"],
        "env": [
            *c.base_env(),
            # Declared before the config path that expands it (the Job controller would add
            # it too, but after our variables, too late for $(...) expansion).
            {"name": ENV_JOB_COMPLETION_INDEX, "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['{ANNOTATION_JOB_COMPLETION_INDEX}']"}}},
            c.config_env(config_file(f"$({ENV_JOB_COMPLETION_INDEX})")),
        ],
        "resources": c.container_resources(s),
        "volumeMounts": [cfg_mount, *mounts],
    }
    pod = c.pod_spec(s, defaults, container, [cfg_volume, *volumes])
    n = len(s.benchmarks)
    return [
        c.config_map(body, name, ROLE, stage_configs(sweep, resolved)),
        c.job(body, s, name, ROLE, pod, pod_labels=c.labels(sweep.kind, sweep.metadata.name, ROLE),
              bad_config_action="FailIndex", completionMode="Indexed", completions=n,
              parallelism=min(s.parallelism, n), backoffLimitPerIndex=s.max_retries),
    ]
