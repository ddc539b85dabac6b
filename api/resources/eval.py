"""EvalSweep: a thinking-budget sweep over benchmarks against a server (`thinkube eval`).

The sweep fans out by benchmark: one pod per benchmark (an Indexed Job, `parallelism` at a
time), each running the whole budget grid, because the scaling metrics of a curve (s1
section 3) compare every budget of one benchmark and so belong in one process.
"""

from __future__ import annotations

from pydantic import Field

from thinkube.api.model import Model, exactly_one
from thinkube.api.resources.common import ArtifactURI, CustomResource, JobSpec, Names, ObjectName, PrinterColumn, Status
from thinkube.api.stages.evaluate import EvalSettings


class Target(Model):
    rules = (exactly_one("spec.target", serverRef="server_ref", url="url"),)
    server_ref: ObjectName | None = Field(
        default=None,
        description=("name of a BudgetForcedServer; the sweep waits (condition WaitingForInput) until it is Ready"),
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        max_length=2048,
        description="base URL of any OpenAI-compatible server with budget forcing",
    )
    model: str | None = Field(
        default=None, min_length=1, description=("model name to request (default: the server's first)")
    )


class Benchmark(Model):
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        max_length=63,
        description=("aime24, aime25, math500, gpqa_diamond, or any name for a generic file"),
    )
    uri: ArtifactURI = Field(description="the problems (GPQA is gated: supply your own copy)")
    limit: int | None = Field(default=None, ge=1, description="evaluate only the first N problems")


class EvalSweepSpec(JobSpec, EvalSettings):
    """The sweep settings (thinkube.api.stages.evaluate), the target, the benchmarks and the Job's fields."""

    target: Target
    benchmarks: list[Benchmark] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    parallelism: int = Field(default=1, ge=1, le=64, description="benchmarks evaluated at the same time")
    max_retries: int = Field(default=1, ge=0, le=20, description="pod retries per benchmark (Job backoffLimitPerIndex)")


class Results(Model):
    benchmarks: int
    succeeded: int
    failed: int


class EvalSweepStatus(Status):
    progress: str | None = Field(default=None, description="benchmarks done out of benchmarks")
    results: Results | None = None


class EvalSweep(CustomResource):
    """Sweep thinking budgets over benchmarks against a server: an Indexed Job running `thinkube eval`."""

    names = Names(
        kind="EvalSweep",
        plural="evalsweeps",
        short="evs",
        max_name_length=48,
        columns=(
            PrinterColumn("Progress", ".status.progress"),
            PrinterColumn("Target", ".spec.target.serverRef"),
            PrinterColumn("Output", ".status.outputUri", priority=1),
        ),
    )
    spec: EvalSweepSpec
    status: EvalSweepStatus = Field(default_factory=EvalSweepStatus)
