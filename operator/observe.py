"""Status from children: what phase a resource is in, judged only by its live child objects.

What every kind that runs a Job shares; each kind's own reading is in its module (thinkube.operator.kinds)."""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkube.api.resources.common import JobSpec, Phase

# The Job condition reason when podFailurePolicy failed it (exit code EXIT_BAD_CONFIG).
POD_FAILURE_POLICY = "PodFailurePolicy"


@dataclass(frozen=True)
class Observed:
    phase: Phase
    reason: str  # CamelCase, as Kubernetes condition reasons
    message: str
    fields: dict = field(default_factory=dict)  # kind-specific status fields


def true_conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


def job(spec: JobSpec, live: dict | None) -> Observed:
    """The phase of a run-to-completion resource from its Job."""
    if live is None:
        return Observed(Phase.PENDING, "Creating", "creating the Job")
    done = true_conditions(live)
    if "Complete" in done:
        return Observed(Phase.SUCCEEDED, "Completed", "the Job completed")
    if "Failed" in done:
        return Observed(Phase.FAILED, done["Failed"].get("reason", "JobFailed"), done["Failed"].get("message", ""))
    if live["spec"].get("suspend"):
        if spec.suspend:
            return Observed(Phase.SUSPENDED, "Suspended", "spec.suspend is true")
        return Observed(Phase.PENDING, "Queued", f"waiting for Kueue to admit the Job (queue {spec.queue_name})")
    active = (live.get("status") or {}).get("active", 0)
    if active:
        return Observed(Phase.RUNNING, "Running", f"{active} pod(s) active")
    return Observed(Phase.PENDING, "PodsPending", "waiting for the Job's pods")


def count_indexes(spec: str | None) -> int:
    """How many indexes a Job index set such as "0-2,5" names."""
    total = 0
    for part in filter(None, (spec or "").split(",")):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total
