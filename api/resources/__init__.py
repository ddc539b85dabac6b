"""The four custom resources (group thinkube.dev, v1alpha1), one module each."""

from __future__ import annotations

from thinkube.api.resources.common import CustomResource
from thinkube.api.resources.curation import CurationJob
from thinkube.api.resources.eval import EvalSweep
from thinkube.api.resources.server import BudgetForcedServer
from thinkube.api.resources.sft import SFTRun

# Pipeline order: each stage can consume the previous one's output by reference.
KINDS: tuple[type[CustomResource], ...] = (CurationJob, SFTRun, BudgetForcedServer, EvalSweep)
BY_KIND: dict[str, type[CustomResource]] = {k.names.kind: k for k in KINDS}

__all__ = ["KINDS", "BY_KIND", "CurationJob", "SFTRun", "BudgetForcedServer", "EvalSweep"]
