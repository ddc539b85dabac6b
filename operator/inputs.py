"""Chaining: which stage a resource reads from, and whether that stage's output is ready.

CurationJob -> SFTRun (dataset) -> BudgetForcedServer (model) -> EvalSweep (target). A
reference is followed only inside the resource's namespace. Pure functions: the reconciler
fetches the referenced object and hands it in, with what its kind offers (thinkube.operator.kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from thinkube.api.resources.common import Phase


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


@dataclass(frozen=True)
class Served:
    """A resource's model endpoints as URL@MODEL, BudgetForcedServer names resolved."""

    base_models: tuple[str, ...] = ()
    teacher: str | None = None


def server_references(endpoints: list[tuple[str, str]]) -> list[Reference]:
    """The (field, value) endpoints that name a BudgetForcedServer rather than a URL@MODEL."""
    return [Reference("BudgetForcedServer", value, field) for field, value in endpoints if "://" not in value]


def follow(ref: Reference, referenced: Mapping | None, offered: Callable[[Mapping], str | None], ready: Phase) -> Input:
    """What a referenced object offers (`offered` of its status) once it is in phase `ready`."""
    if referenced is None:
        return Input(
            waiting="ReferenceNotFound",
            message=f"{ref.describe()} does not exist in this namespace yet; create it or fix the name",
        )
    status = referenced.get("status") or {}
    phase = status.get("phase")
    if phase == Phase.FAILED.value:
        return Input(
            failed="InputFailed", message=f"{ref.describe()} failed: {status.get('message', 'see its conditions')}"
        )
    uri = offered(status)
    if phase != ready.value or not uri:
        return Input(
            waiting="InputNotReady",
            message=f"waiting for {ref.describe()} to be {ready.value} (now {phase or 'Pending'})",
        )
    return Input(uri=uri)


def output_inside(name: str) -> Callable[[Mapping], str | None]:
    """`offered` of a run-to-completion kind: `name` inside its status.outputUri."""

    def offered(status: Mapping) -> str | None:
        out = status.get("outputUri")
        return f"{out.rstrip('/')}/{name}" if out else None

    return offered
