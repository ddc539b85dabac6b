"""Kubernetes Conditions (metav1.Condition) as plain dicts, kept stable across reconciles."""

from __future__ import annotations

from typing import Iterable, Mapping

# Types the operator writes. Complete (run-to-completion kinds) or Ready (servers) is the
# primary one; Failed explains terminal failures; WaitingForInput says a referenced stage has
# not produced its output yet; Synced says whether the children match the spec.
COMPLETE, READY, FAILED, WAITING, SYNCED = "Complete", "Ready", "Failed", "WaitingForInput", "Synced"


def condition(type_: str, status: bool, reason: str, message: str, generation: int | None, now: str) -> dict:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }


def merge(old: Iterable[Mapping], new: Iterable[dict]) -> list[dict]:
    """New conditions, keeping lastTransitionTime where a condition's status did not change."""
    before = {c["type"]: c for c in old}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        if prev is not None and prev.get("status") == cond["status"]:
            cond = {**cond, "lastTransitionTime": prev["lastTransitionTime"]}
        out.append({k: v for k, v in cond.items() if v is not None})
    return out
