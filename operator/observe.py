"""Status from children: what phase a resource is in, judged only by its live child objects."""
from __future__ import annotations

from dataclasses import dataclass, field

from thinkube.api.resources import BudgetForcedServer, EvalSweep, SFTRun
from thinkube.api.resources.common import JobSpec, Phase
from thinkube.operator.builders import common as c
from thinkube.operator.builders.server import ROLE as SERVE_ROLE
from thinkube.operator.builders.server import endpoint

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


def sft(run: SFTRun, live: dict | None, attempt: int) -> Observed:
    o = job(run.spec, live)
    ready = ((live or {}).get("status") or {}).get("ready", 0)
    progress = {Phase.SUCCEEDED: "done", Phase.RUNNING: f"{ready}/{run.spec.nodes} pods ready"}.get(o.phase)
    fields = {"restarts": attempt, "jobName": (live or {}).get("metadata", {}).get("name"), "progress": progress}
    if o.phase == Phase.FAILED and o.reason != POD_FAILURE_POLICY:
        # The reconciler restarts the gang while restarts are left, so a failure seen here is final.
        o = Observed(o.phase, "RestartBudgetExhausted", f"attempt {attempt} failed ({o.reason}: {o.message}) "
                     f"and the spec.maxRestarts={run.spec.max_restarts} restarts are used up")
    return Observed(o.phase, o.reason, o.message, fields)


def count_indexes(spec: str | None) -> int:
    """How many indexes a Job index set such as "0-2,5" names."""
    total = 0
    for part in filter(None, (spec or "").split(",")):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def evaluation(sweep: EvalSweep, live: dict | None) -> Observed:
    o = job(sweep.spec, live)
    status = (live or {}).get("status") or {}
    n = len(sweep.spec.benchmarks)
    ok, bad = count_indexes(status.get("completedIndexes")), count_indexes(status.get("failedIndexes"))
    fields = {"progress": f"{ok + bad}/{n}", "results": {"benchmarks": n, "succeeded": ok, "failed": bad}}
    return Observed(o.phase, o.reason, o.message, fields)


def server(bfs: BudgetForcedServer, live: dict | None) -> Observed:
    fields = {"endpoint": endpoint(bfs), "selector": c.selector(bfs.kind, bfs.metadata.name, SERVE_ROLE)}
    if live is None:
        return Observed(Phase.PENDING, "Creating", "creating the Deployment", fields)
    status = live.get("status") or {}
    want, ready = live["spec"].get("replicas", 1), status.get("readyReplicas", 0)
    fields |= {"replicas": status.get("replicas", 0), "readyReplicas": ready, "ready": f"{ready}/{want}"}
    if bfs.spec.suspend:
        return Observed(Phase.SUSPENDED, "Suspended", "spec.suspend is true: scaled to 0", fields)
    progressing = next((c for c in status.get("conditions") or [] if c["type"] == "Progressing"), {})
    if progressing.get("status") == "False":
        return Observed(Phase.FAILED, progressing.get("reason", "ProgressDeadlineExceeded"),
                        progressing.get("message", ""), fields)
    if ready:
        return Observed(Phase.READY, "Serving", f"{ready}/{want} pods ready", fields)
    return Observed(Phase.PENDING, "Starting", "waiting for a pod to pass its /health startup probe", fields)
