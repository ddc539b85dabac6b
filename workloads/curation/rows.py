"""Rows as they move through the stages: an S1Record plus its provenance.

Provenance lives in `record.extra["curation"]` so it is saved by `save_records`, survives
a load -> save round trip, and ends up in every output row: the pool it came from, its
row index there, each stage's decision and the trace length.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from thinkube.workloads.formats import S1Record

PROV = "curation"


def prov(record: S1Record) -> dict:
    return record.extra[PROV]


def decide(record: S1Record, stage: str, decision) -> None:
    prov(record)["decisions"][stage] = decision


def normalise_question(text: str) -> str:
    """Case and whitespace folded: what "the same question" means for exact duplicates."""
    return " ".join(text.lower().split())


def question_sha(text: str) -> str:
    return hashlib.sha256(normalise_question(text).encode()).hexdigest()[:32]


def source_label(record: S1Record) -> str:
    """What source rules match against: the pool name and, when present, the row's source_type."""
    p = prov(record)
    return f"{p['source']}/{record.source_type}" if record.source_type else p["source"]


@dataclass
class StageResult:
    kept: list[S1Record]
    dropped: list[tuple[S1Record, str]] = field(default_factory=list)  # (row, reason)
    info: dict = field(default_factory=dict)  # stage-specific figures for the report

    def drop_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, reason in self.dropped:
            counts[reason] = counts.get(reason, 0) + 1
        return counts
