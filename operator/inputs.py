"""Chaining: which stage a resource reads from, and whether that stage's output is ready.

CurationJob -> SFTRun (dataset) -> BudgetForcedServer (model) -> EvalSweep (target). A
reference is followed only inside the resource's namespace. Pure functions: the reconciler
fetches the referenced object and hands it in.
"""
from __future__ import annotations

from dataclasses import dataclass

from thinkube.api.resources import BudgetForcedServer, CurationJob, EvalSweep, SFTRun
from thinkube.api.resources.common import CustomResource, Phase

# What a stage leaves inside its output folder for the next one. Named here, not imported:
# the workload modules pull in torch and datasets, which the operator image need not have.
CURATED_DATASET = "selected.jsonl"  # thinkube.workloads.curation.pipeline.SELECTED_JSONL
FINAL_MODEL_DIR = "final"  # thinkube.workloads.training.checkpoint.FINAL


@dataclass(frozen=True)
class Reference:
    kind: str  # the referenced kind
    name: str
    field: str  # where the reference is written, for messages

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} ({self.field})"


@dataclass(frozen=True)
class Input:
    """Either a URI, or why there is none yet (waiting) or ever (failed)."""

    uri: str | None = None
    waiting: str | None = None  # reason: ReferenceNotFound, InputNotReady
    failed: str | None = None  # reason: InputFailed
    message: str = ""


def reference(res: CustomResource) -> Reference | None:
    if isinstance(res, SFTRun) and res.spec.dataset.from_curation_job:
        return Reference("CurationJob", res.spec.dataset.from_curation_job, "spec.dataset.fromCurationJob")
    if isinstance(res, BudgetForcedServer) and res.spec.model.from_sft_run:
        return Reference("SFTRun", res.spec.model.from_sft_run, "spec.model.fromSFTRun")
    if isinstance(res, EvalSweep) and res.spec.target.server_ref:
        return Reference("BudgetForcedServer", res.spec.target.server_ref, "spec.target.serverRef")
    return None


@dataclass(frozen=True)
class Served:
    """A CurationJob's model endpoints as URL@MODEL, BudgetForcedServer names resolved."""

    base_models: tuple[str, ...] = ()
    teacher: str | None = None


def _model_endpoints(res: CustomResource) -> list[tuple[str, str]]:
    """(field, value) of every CurationJob endpoint that may name a BudgetForcedServer instead of a URL@MODEL."""
    if not isinstance(res, CurationJob):
        return []
    found = [(f"spec.baseModels[{i}]", m) for i, m in enumerate(res.spec.base_models)]
    if res.spec.teacher:
        found.append(("spec.teacher.endpoint", res.spec.teacher.endpoint))
    return found


def server_references(res: CustomResource) -> list[Reference]:
    """CurationJob endpoints (spec.baseModels entries, spec.teacher.endpoint) that name a BudgetForcedServer."""
    return [Reference("BudgetForcedServer", m, field) for field, m in _model_endpoints(res) if "://" not in m]


def served(res: CustomResource, servers: dict[str, str]) -> Served:
    """The resource's model endpoints with server names replaced by `servers` (name -> URL@MODEL)."""
    if not isinstance(res, CurationJob):
        return Served()
    s = res.spec
    return Served(tuple(servers.get(m, m) for m in s.base_models),
                  servers.get(s.teacher.endpoint, s.teacher.endpoint) if s.teacher else None)


def served_before(res: CustomResource, status: dict) -> dict[str, str]:
    """Server name -> URL@MODEL as an earlier reconcile resolved them (status.baseModels, status.teacher)."""
    if not isinstance(res, CurationJob):
        return {}
    pairs = list(zip(res.spec.base_models, status.get("baseModels") or []))
    if res.spec.teacher and status.get("teacher"):
        pairs.append((res.spec.teacher.endpoint, status["teacher"]))
    return {name: uri for name, uri in pairs if "://" not in name}


def served_endpoint(ref: Reference, referenced: dict | None) -> Input:
    """A referenced server as URL@MODEL (base models, teacher): its endpoint and the model it serves."""
    found = follow(ref, referenced)
    if found.uri is None:
        return found
    model = referenced["spec"].get("servedModelName") or referenced["status"].get("inputUri")
    return Input(uri=f"{found.uri}@{model}")


def literal(res: CustomResource) -> str:
    """The input written directly in the spec (when there is no reference)."""
    if isinstance(res, CurationJob):
        return ", ".join(res.spec.pools.values())
    if isinstance(res, SFTRun):
        return res.spec.dataset.uri
    if isinstance(res, BudgetForcedServer):
        return res.spec.model.uri
    return res.spec.target.url


def follow(ref: Reference, referenced: dict | None) -> Input:
    """What a referenced object offers: its output once it has succeeded (servers: once Ready)."""
    if referenced is None:
        return Input(waiting="ReferenceNotFound",
                     message=f"{ref.describe()} does not exist in this namespace yet; create it or fix the name")
    status = referenced.get("status") or {}
    phase = status.get("phase")
    if phase == Phase.FAILED.value:
        return Input(failed="InputFailed", message=f"{ref.describe()} failed: {status.get('message', 'see its conditions')}")
    ready = Phase.READY if ref.kind == "BudgetForcedServer" else Phase.SUCCEEDED
    uri = _offered_uri(ref.kind, status)
    if phase != ready.value or not uri:
        return Input(waiting="InputNotReady",
                     message=f"waiting for {ref.describe()} to be {ready.value} (now {phase or 'Pending'})")
    return Input(uri=uri)


def _offered_uri(kind: str, status: dict) -> str | None:
    if kind == "BudgetForcedServer":
        return status.get("endpoint")
    out = status.get("outputUri")
    inside = {"CurationJob": CURATED_DATASET, "SFTRun": FINAL_MODEL_DIR}[kind]
    return f"{out.rstrip('/')}/{inside}" if out else None
