"""One level-based reconcile of one resource: read what is, apply what should be, report it.

Called on every create/update/resume and on a timer, so it must be idempotent: children
are server-side applied by name (no duplicates across operator restarts), a deleted child
is simply applied again, and the status is recomputed from the children each time.
Problems with the spec or its references end up in conditions; only API outages raise.
"""
from __future__ import annotations

from typing import Mapping

from pydantic import ValidationError

from thinkube.api.resources import BY_KIND, EvalSweep, SFTRun
from thinkube.api.resources.common import CustomResource, JobSpec, Phase
from thinkube.constants import API_VERSION, LABEL_KIND, LABEL_NAME
from thinkube.operator import gang, inputs, observe
from thinkube.operator.builders import BUILDERS, Defaults, Resolved, settle
from thinkube.operator.kube import ApiError, Kube
from thinkube.operator.report import APPLIED, NOTHING_TO_APPLY, Event, Report, Synced, compose

# API errors that no retry fixes: the child as built is refused (immutable field, forbidden).
PERMANENT = {400, 403, 422}


class InvalidSpec(ValueError):
    pass


def reconcile(body: Mapping, kube: Kube, defaults: Defaults, now: str) -> tuple[dict, list[Event]]:
    """The new status and the events to post. `now`: RFC 3339, for condition transitions."""
    old = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    try:
        res = BY_KIND[body["kind"]].model_validate(body)
    except ValidationError as e:
        report = _invalid(_validation_message(e))
    else:
        if _finished(res, old, generation):
            return old, []
        try:
            report = _reconcile(res, body, kube, defaults, old, generation)
        except InvalidSpec as e:
            report = _invalid(str(e))
    return compose(body["kind"], old, report, generation, now)


def _finished(res: CustomResource, old: dict, generation: int | None) -> bool:
    # A run that succeeded stays done: deleting its Job must not train or evaluate again.
    return (isinstance(res.spec, JobSpec) and old.get("phase") == Phase.SUCCEEDED.value
            and old.get("observedGeneration") == generation)


def _reconcile(res: CustomResource, body: Mapping, kube: Kube, defaults: Defaults, old: dict,
               generation: int | None) -> Report:
    output = _output_uri(res, defaults)  # an impossible spec is reported before any waiting
    inp = _input(res, kube, old, generation)
    served = _served(res, kube, old, generation)
    if isinstance(served, inputs.Input) and (served.failed or inp.uri is not None):
        inp = served  # a server not ready (or failed): say why, as for the main input
    if inp.failed:
        return Report(observe.Observed(Phase.FAILED, inp.failed, inp.message), synced=NOTHING_TO_APPLY)
    if inp.uri is None:
        phase = Phase.SUSPENDED if res.spec.suspend else Phase.PENDING
        return Report(observe.Observed(phase, inp.waiting, inp.message), synced=NOTHING_TO_APPLY,
                      waiting=(inp.waiting, inp.message))
    events: list[Event] = []
    attempt = 0
    if isinstance(res, SFTRun):
        jobs = kube.list("batch/v1", "Job", res.metadata.namespace, {LABEL_KIND: res.kind, LABEL_NAME: res.metadata.name})
        attempt, restart = gang.next_attempt(res, jobs, old.get("restarts", 0))
        if restart:
            events.append(Event("Warning", "GangRestart", restart))
    desired = BUILDERS[res.kind](body, Resolved(inp.uri, output, attempt, served.base_models, served.teacher),
                                 defaults)
    children, synced = _apply_all(kube, body["metadata"]["uid"], desired)
    return Report(_observe(res, children, attempt), synced=synced, input_uri=inp.uri, output_uri=output,
                  base_models=served.base_models, teacher=served.teacher, events=tuple(events))


def _input(res: CustomResource, kube: Kube, old: dict, generation: int | None) -> inputs.Input:
    ref = inputs.reference(res)
    if ref is None:
        return inputs.Input(uri=inputs.literal(res))
    found = inputs.follow(ref, kube.get(API_VERSION, ref.kind, res.metadata.namespace, ref.name))
    if found.uri is None and old.get("inputUri") and old.get("observedGeneration") == generation:
        # Already started from this input: the children were built with it, and the
        # referenced stage going away (or re-running) later must not stop them.
        return inputs.Input(uri=old["inputUri"])
    return found


def _served(res: CustomResource, kube: Kube, old: dict, generation: int | None) -> inputs.Served | inputs.Input:
    """CurationJob.spec.baseModels and spec.teacher.endpoint as URL@MODEL with server names resolved,
    or why they are not yet."""
    # The Job started with what the status shows: a server restarting must not stop it.
    resolved = inputs.served_before(res, old) if old.get("observedGeneration") == generation else {}
    for ref in inputs.server_references(res):
        if ref.name in resolved:
            continue
        found = inputs.served_endpoint(ref, kube.get(API_VERSION, ref.kind, res.metadata.namespace, ref.name))
        if found.uri is None:
            return found
        resolved[ref.name] = found.uri
    return inputs.served(res, resolved)


def _output_uri(res: CustomResource, defaults: Defaults) -> str | None:
    if not isinstance(res.spec, JobSpec):
        return None
    if res.spec.output_uri:
        return res.spec.output_uri
    if defaults.artifacts_pvc:
        return f"pvc://{defaults.artifacts_pvc}/{res.names.plural}/{res.metadata.namespace}/{res.metadata.name}"
    raise InvalidSpec("spec.outputUri is not set and the operator has no default (--artifacts-pvc): "
                      "set spec.outputUri to pvc://<claim>/<path>")


def _apply_all(kube: Kube, owner_uid: str, desired: list[dict]) -> tuple[dict[str, dict], Synced]:
    """Apply each child; returns the children by kind (as the API server has them now) and the sync state."""
    children: dict[str, dict] = {}
    synced = APPLIED
    for obj in desired:
        meta = obj["metadata"]
        live = kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if live is not None and not _owned_by(live, owner_uid):
            synced = Synced(False, "NameConflict", f"{obj['kind']} {meta['name']!r} exists and belongs to someone "
                                                   f"else: delete it or rename this resource")
            continue
        try:
            children[obj["kind"]] = kube.apply(settle(obj, live))
        except ApiError as e:
            if e.status not in PERMANENT:
                raise
            synced = Synced(False, "ApplyFailed", f"{obj['kind']} {meta['name']!r}: {e.message}")
            if live is not None:
                children[obj["kind"]] = live
    return children, synced


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or [])


def _observe(res: CustomResource, children: dict[str, dict], attempt: int) -> observe.Observed:
    if isinstance(res, SFTRun):
        return observe.sft(res, children.get("Job"), attempt)
    if isinstance(res, EvalSweep):
        return observe.evaluation(res, children.get("Job"))
    if isinstance(res.spec, JobSpec):
        return observe.job(res.spec, children.get("Job"))
    return observe.server(res, children.get("Deployment"))


def _invalid(message: str) -> Report:
    return Report(observe.Observed(Phase.FAILED, "InvalidSpec", message), synced=Synced(False, "InvalidSpec", message))


def _validation_message(e: ValidationError) -> str:
    """pydantic's errors as `field.path: what is wrong`, one per line."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
