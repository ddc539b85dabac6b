"""Every kind the operator reconciles, one module each (build, observe, inputs, offered output,
primary condition), registered here by kind name: a new kind is one new module and one line."""

from __future__ import annotations

from thinkube.operator.kinds import curation, evaluation, server, sft
from thinkube.operator.kinds.common import Defaults, Resolved
from thinkube.operator.kinds.kind import Kind
from thinkube.operator.kinds.settle import settle

# Pipeline order, as thinkube.api.resources.KINDS.
KINDS: dict[str, Kind] = {k.resource.names.kind: k for k in (curation.KIND, sft.KIND, server.KIND, evaluation.KIND)}

__all__ = ["KINDS", "Kind", "Defaults", "Resolved", "settle"]
