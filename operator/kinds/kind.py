"""What the operator knows about one kind, as one object: each kind's module defines its `KIND`.

The reconcile loop is the same for every kind; what differs is here: how the children are
built, how the phase is read from them, where the input comes from, what the finished
resource offers the next stage, and which condition is the primary one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from thinkube.api.resources.common import CustomResource, Phase
from thinkube.operator.inputs import Reference, Served
from thinkube.operator.kinds.common import Defaults, Resolved
from thinkube.operator.observe import Observed


def _no_endpoints(res: Any) -> list[tuple[str, str]]:
    return []


def _nothing_served(res: Any, servers: Mapping[str, str]) -> Served:
    return Served()


def _nothing_served_before(res: Any, status: Mapping) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Kind:
    """The functions take the kind's own resource model (`resource`), validated."""

    resource: type[CustomResource]
    build: Callable[[Mapping, Resolved, Defaults], list[dict]]
    # (resource, live children by kind, attempt) -> phase, reason, message and status fields
    observe: Callable[[Any, dict[str, dict], int], Observed]
    reference: Callable[[Any], Reference | None]  # the input, when the spec names another resource
    literal: Callable[[Any], str]  # the input written in the spec, otherwise
    offered: Callable[[Mapping], str | None]  # from its status: what the next stage reads
    ready: Phase  # the phase in which it offers it
    primary: str  # the condition type that says it is done (Complete) or serving (Ready)
    # Model endpoints in the spec that may name a BudgetForcedServer: (field, value) pairs, and
    # the resolved values as the children and the status take them.
    endpoints: Callable[[Any], list[tuple[str, str]]] = _no_endpoints
    served: Callable[[Any, Mapping[str, str]], Served] = _nothing_served
    served_before: Callable[[Any, Mapping], dict[str, str]] = _nothing_served_before
    # Whole-gang restarts: (resource, its Jobs, restarts recorded) -> (attempt to run, why it restarts)
    next_attempt: Callable[[Any, list[dict], int], tuple[int, str | None]] | None = None
