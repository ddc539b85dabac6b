"""Ingest: pools -> records with provenance, then exact-duplicate removal."""

from __future__ import annotations

import logging

from thinkube.api.stages.curate import CurateConfig
from thinkube.workloads.curation.rows import PROV, StageResult, decide, normalise_question, prov
from thinkube.workloads.formats import S1Record, load_records

log = logging.getLogger(__name__)


class PoolError(ValueError):
    """A pool cannot be read or mapped; the message names the pool and the fix."""


def load_pool(name: str, uri: str, column_map: dict[str, str] | None) -> list[S1Record]:
    try:
        records = load_records(uri, column_map=column_map)
    except (ValueError, FileNotFoundError) as e:
        raise PoolError(f"pool {name!r} ({uri}): {e}; map columns with --column-map {name}:field=column,...") from e
    for i, r in enumerate(records):
        uid = f"{name}:{i}"
        r.extra[PROV] = {"source": name, "index": i, "uid": uid, "decisions": {}, "trace_tokens": None}
        if r.id is None:  # ids must be unique across pools; the pool's own ids are kept as they are
            r.id = uid
    return records


def ingest(cfg: CurateConfig) -> StageResult:
    records: list[S1Record] = []
    per_source = {}
    for name, uri in cfg.pools.items():
        pool = load_pool(name, uri, cfg.column_maps.get(name))
        per_source[name] = len(pool)
        log.info("pool %s: %d rows from %s", name, len(pool), uri)
        records.extend(pool)
    return StageResult(records, info={"per_source": per_source})


def dedupe(records: list[S1Record]) -> StageResult:
    """Keep the first row of each normalised question text (pool order, then row order)."""
    first: dict[str, str] = {}
    result = StageResult([])
    for r in records:
        key = normalise_question(r.question)
        if key in first:
            decide(r, "dedupe", {"duplicate_of": first[key]})
            result.dropped.append((r, "duplicate"))
        else:
            first[key] = prov(r)["uid"]
            result.kept.append(r)
    return result
