"""From what a reconcile found to the resource's new status and the events worth posting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinkube.api.resources.common import Phase
from thinkube.operator import conditions as cond
from thinkube.operator.observe import Observed


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Synced:
    ok: bool
    reason: str
    message: str


APPLIED = Synced(True, "Applied", "children match the spec")
NOTHING_TO_APPLY = Synced(True, "NothingToApply", "children are created once the input is ready")


@dataclass(frozen=True)
class Report:
    observed: Observed
    synced: Synced = APPLIED
    waiting: tuple[str, str] | None = None  # (reason, message) while a referenced stage is not ready
    input_uri: str | None = None
    output_uri: str | None = None
    base_models: tuple[str, ...] = ()  # CurationJob: resolved spec.baseModels
    teacher: str | None = None  # CurationJob: resolved spec.teacher.endpoint (URL@MODEL; never a key)
    events: tuple[Event, ...] = ()  # besides phase changes


def compose(primary: str, old: dict, report: Report, generation: int | None, now: str) -> tuple[dict, list[Event]]:
    """`primary`: the kind's main condition type (Complete, or Ready for servers)."""
    o = report.observed
    waiting_reason, waiting_message = report.waiting or ("InputReady", "")
    conditions = cond.merge(
        old.get("conditions") or [],
        [
            cond.condition(primary, o.phase in (Phase.SUCCEEDED, Phase.READY), o.reason, o.message, generation, now),
            cond.condition(
                cond.FAILED,
                o.phase == Phase.FAILED,
                o.reason,
                o.message if o.phase == Phase.FAILED else "",
                generation,
                now,
            ),
            cond.condition(cond.WAITING, report.waiting is not None, waiting_reason, waiting_message, generation, now),
            cond.condition(cond.SYNCED, report.synced.ok, report.synced.reason, report.synced.message, generation, now),
        ],
    )
    status = {
        "phase": o.phase.value,
        "message": o.message,
        "conditions": conditions,
        "observedGeneration": generation,
        "inputUri": report.input_uri,
        "outputUri": report.output_uri,
        "baseModels": list(report.base_models) or None,
        "teacher": report.teacher,
        **o.fields,
    }
    status = {k: v for k, v in status.items() if v is not None}
    events = list(report.events)
    if old.get("phase") != o.phase.value:
        events.append(
            Event(
                "Warning" if o.phase == Phase.FAILED else "Normal",
                o.reason,
                f"{o.phase.value}: {o.message}" if o.message else o.phase.value,
            )
        )
    if not report.synced.ok and report.synced.reason != o.reason and _changed(old, cond.SYNCED, report.synced):
        events.append(Event("Warning", report.synced.reason, report.synced.message))
    return status, events


def _changed(old: dict, type_: str, synced: Synced) -> bool:
    prev: dict[str, Any] = next((c for c in old.get("conditions") or [] if c.get("type") == type_), {})
    return (prev.get("reason"), prev.get("message")) != (synced.reason, synced.message)


def status_patch(old: dict, new: dict) -> dict:
    """A JSON merge patch from old to new status: changed keys, and None for removed ones."""
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch
