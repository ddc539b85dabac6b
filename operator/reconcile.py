"""One level-based reconcile of one resource: read what is, apply what should be, report it.

Called on every create/update/resume and on a timer, so it must be idempotent: children
are server-side applied by name (no duplicates across operator restarts), a deleted child
is simply applied again, and the status is recomputed from the children each time.
Problems with the spec or its references end up in conditions; only API outages raise.
"""

from __future__ import annotations

from typing import Mapping

from pydantic import ValidationError

from thinkube.api.resources.common import CustomResource, JobSpec, Phase
from thinkube.constants import API_VERSION
from thinkube.operator import inputs, observe
from thinkube.operator.kinds import KINDS, Defaults, Kind, Resolved, settle
from thinkube.operator.kinds.common import labels
from thinkube.operator.kinds.server import as_model_endpoint
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
    kind = KINDS[body["kind"]]
    try:
        res = kind.resource.model_validate(body)
    except ValidationError as e:
        report = _invalid(_validation_message(e))
    else:
        if _finished(res, old, generation):
            return old, []
        try:
            report = _reconcile(kind, res, body, kube, defaults, old, generation)
        except InvalidSpec as e:
            report = _invalid(str(e))
    return compose(kind.primary, old, report, generation, now)


def _finished(res: CustomResource, old: dict, generation: int | None) -> bool:
    # A run that succeeded stays done: deleting its Job must not train or evaluate again.
    return (
        isinstance(res.spec, JobSpec)
        and old.get("phase") == Phase.SUCCEEDED.value
        and old.get("observedGeneration") == generation
    )


def _reconcile(
    kind: Kind, res: CustomResource, body: Mapping, kube: Kube, defaults: Defaults, old: dict, generation: int | None
) -> Report:
    output = _output_uri(res, defaults)  # an impossible spec is reported before any waiting
    inp = _input(kind, res, kube, old, generation)
    served = _served(kind, res, kube, old, generation)
    if isinstance(served, inputs.Input) and (served.failed or inp.uri is not None):
        inp = served  # a server not ready (or failed): say why, as for the main input
    if inp.failed:
        return Report(observe.Observed(Phase.FAILED, inp.failed, inp.message), synced=NOTHING_TO_APPLY)
    if inp.uri is None:
        assert inp.waiting is not None  # an input with neither a URI nor a failure says why it waits
        phase = Phase.SUSPENDED if res.spec.suspend else Phase.PENDING
        return Report(
            observe.Observed(phase, inp.waiting, inp.message),
            synced=NOTHING_TO_APPLY,
            waiting=(inp.waiting, inp.message),
        )
    assert isinstance(served, inputs.Served)  # a server not resolved became inp above, and returned
    events: list[Event] = []
    attempt = 0
    if kind.next_attempt is not None:
        jobs = kube.list("batch/v1", "Job", _namespace(res), labels(res.kind, res.metadata.name))
        attempt, restart = kind.next_attempt(res, jobs, old.get("restarts", 0))
        if restart:
            events.append(Event("Warning", "GangRestart", restart))
    try:
        desired = kind.build(body, Resolved(inp.uri, output, attempt, served.base_models, served.teacher), defaults)
    except ValidationError as e:  # the stage's config refuses what the resource's schema let through
        raise InvalidSpec(_validation_message(e)) from None
    children, synced = _apply_all(kube, body["metadata"]["uid"], desired)
    return Report(
        kind.observe(res, children, attempt),
        synced=synced,
        input_uri=inp.uri,
        output_uri=output,
        base_models=served.base_models,
        teacher=served.teacher,
        events=tuple(events),
    )


def _input(kind: Kind, res: CustomResource, kube: Kube, old: dict, generation: int | None) -> inputs.Input:
    ref = kind.reference(res)
    if ref is None:
        return inputs.Input(uri=kind.literal(res))
    source = KINDS[ref.kind]
    found = inputs.follow(ref, kube.get(API_VERSION, ref.kind, _namespace(res), ref.name), source.offered, source.ready)
    if found.uri is None and old.get("inputUri") and old.get("observedGeneration") == generation:
        # Already started from this input: the children were built with it, and the
        # referenced stage going away (or re-running) later must not stop them.
        return inputs.Input(uri=old["inputUri"])
    return found


def _served(
    kind: Kind, res: CustomResource, kube: Kube, old: dict, generation: int | None
) -> inputs.Served | inputs.Input:
    """The model endpoints of the spec (a CurationJob's baseModels and teacher) as URL@MODEL with
    server names resolved, or why they are not yet."""
    # The Job started with what the status shows: a server restarting must not stop it.
    resolved = kind.served_before(res, old) if old.get("observedGeneration") == generation else {}
    server = KINDS["BudgetForcedServer"]
    for ref in inputs.server_references(kind.endpoints(res)):
        if ref.name in resolved:
            continue
        referenced = kube.get(API_VERSION, ref.kind, _namespace(res), ref.name)
        found = as_model_endpoint(inputs.follow(ref, referenced, server.offered, server.ready), referenced)
        if found.uri is None:
            return found
        resolved[ref.name] = found.uri
    return kind.served(res, resolved)


def _namespace(res: CustomResource) -> str:
    # Set by the API server on every object of a namespaced kind, as all of Thinkube's are.
    assert res.metadata.namespace is not None
    return res.metadata.namespace


def _output_uri(res: CustomResource, defaults: Defaults) -> str | None:
    if not isinstance(res.spec, JobSpec):
        return None
    if res.spec.output_uri:
        return res.spec.output_uri
    if defaults.artifacts_pvc:
        return f"pvc://{defaults.artifacts_pvc}/{res.names.plural}/{res.metadata.namespace}/{res.metadata.name}"
    raise InvalidSpec(
        "spec.outputUri is not set and the operator has no default (--artifacts-pvc): "
        "set spec.outputUri to pvc://<claim>/<path>"
    )


def _apply_all(kube: Kube, owner_uid: str, desired: list[dict]) -> tuple[dict[str, dict], Synced]:
    """Apply each child; returns the children by kind (as the API server has them now) and the sync state."""
    children: dict[str, dict] = {}
    synced = APPLIED
    for obj in desired:
        meta = obj["metadata"]
        live = kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if live is not None and not _owned_by(live, owner_uid):
            synced = Synced(
                False,
                "NameConflict",
                f"{obj['kind']} {meta['name']!r} exists and belongs to someone else: delete it or rename this resource",
            )
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


def _invalid(message: str) -> Report:
    return Report(observe.Observed(Phase.FAILED, "InvalidSpec", message), synced=Synced(False, "InvalidSpec", message))


def _validation_message(e: ValidationError) -> str:
    """pydantic's errors as `field.path: what is wrong`, one per line."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
