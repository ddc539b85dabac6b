"""How every stage reads its configuration: flags > `--config` file > $THINKUBE_CONFIG file > defaults.

The four commands (curate, train, serve, eval) validate the merged settings with their
stage's pydantic model, so a config file, the operator's ConfigMap and the command line
are checked by the same rules. Keys may be written snake_case, kebab-case (the flag
spelling) or camelCase (the resource's spelling).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from thinkube.constants import ENV_CONFIG

M = TypeVar("M", bound=BaseModel)


class BadConfig(ValueError):
    """Wrong input or configuration: the process exits with EXIT_BAD_CONFIG, never retried."""


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise BadConfig(f"config file {p}: not found")
    try:
        data = yaml.safe_load(p.read_text())  # YAML is a superset of JSON: one parser for both
    except yaml.YAMLError as e:
        raise BadConfig(f"config file {p}: not valid YAML/JSON: {e}") from e
    data = data or {}
    if not isinstance(data, dict):
        raise BadConfig(f"config file {p}: expected a mapping of settings, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` wins; mappings (pools, a teacher's settings) merge key by key; None means 'not given'."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, Mapping):  # nested settings given flag by flag: unset ones are None too
            below = out.get(key)
            out[key] = merge(below if isinstance(below, Mapping) else {}, value)
        else:
            out[key] = value
    return out


def problems(error: ValidationError) -> str:
    """Each bad field by its dotted path, with pydantic's reason (and for a missing one, how to give it)."""
    out = []
    for e in error.errors():
        where = ".".join(map(str, e["loc"]))
        message = e["msg"].removeprefix("Value error, ")  # our own checks' messages stand alone
        if e["type"] == "missing" and len(e["loc"]) == 1:
            out.append(f"{where}: required: give --{where.replace('_', '-')} (or `{where}:` in the config file)")
        else:
            out.append(f"{where}: {message}" if where else message)
    return "; ".join(out)


def load(
    model: type[M],
    flags: Mapping[str, Any] | None = None,
    config_path: str | os.PathLike | None = None,
    environ: Mapping[str, str] = os.environ,
) -> M:
    """The stage config: `flags` holds only what the command line gave (None: not given)."""
    layers = [read_config_file(p) for p in (environ.get(ENV_CONFIG), config_path) if p]
    merged: dict[str, Any] = {}
    for layer in [*layers, dict(flags or {})]:
        merged = merge(merged, layer)
    known = {name for name, f in model.model_fields.items()} | {f.alias for f in model.model_fields.values() if f.alias}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise BadConfig(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(model.model_fields)}")
    try:
        return model.model_validate(merged)
    except ValidationError as e:
        raise BadConfig(problems(e)) from None
