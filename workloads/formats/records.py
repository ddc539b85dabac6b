"""s1 records: one schema over the s1K, s1K-1.1 and plain column layouts.

Loads JSON lines, Parquet, `datasets` save_to_disk folders, folders of data files and
`hf://` ids. Columns that map to no field are kept in `S1Record.extra`, so a
load -> save -> load round trip loses nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from thinkube.workloads.uris import local_path, parse_uri

TEACHERS = ("deepseek", "gemini")
SUPPORTED = (
    ".jsonl or .json (JSON lines), .parquet, a folder of .jsonl/.parquet files, "
    "or a folder written by datasets' save_to_disk"
)
# Parquet files from save_records hold metadata/extra as JSON text: their types vary from
# row to row, which a Parquet column cannot; this schema key tells the loader to decode them.
_PARQUET_MARKER = b"thinkube.s1record"
_JSON_COLUMNS = ("metadata", "extra")


class S1Record(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    question: str
    solution: str | None = None  # reference solution or answer
    thinking: str | None = None  # teacher reasoning trace
    attempt: str | None = None  # teacher's final answer text
    cot_type: str | None = None
    source_type: str | None = None
    metadata: dict | str | None = None
    domain: str | None = None  # MSC two-digit code or name
    id: str | None = None
    extra: dict = Field(default_factory=dict)  # source columns no field maps to

    @field_validator("question")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @field_validator("thinking", mode="before")
    @classmethod
    def _join_trajectories(cls, v: Any) -> Any:
        # s1K stores the trace as a list of strings (one element in practice).
        if isinstance(v, list):
            return v[0] if len(v) == 1 else "\n".join(v)
        return v


_FIELDS = tuple(S1Record.model_fields)
_MAPPABLE = tuple(f for f in _FIELDS if f != "extra")


def iter_rows(source: str | os.PathLike, *, split: str = "train") -> Iterator[dict[str, Any]]:
    """Raw rows (column -> value) of a dataset, before any layout mapping."""
    uri = parse_uri(str(source))
    if uri.scheme == "hf":
        import datasets  # optional dependency: only users' own runs fetch from the Hub

        yield from datasets.load_dataset(uri.location, split=split, revision=uri.revision)
        return
    path = local_path(str(source))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        yield from _iter_folder(path, split)
    else:
        yield from _iter_file(path)


def _iter_file(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _iter_parquet(path)
    elif suffix in (".jsonl", ".json"):
        yield from _iter_json_lines(path)
    else:
        raise ValueError(f"{path}: unsupported format {suffix or '(no extension)'!r}; supported: {SUPPORTED}")


def _iter_folder(path: Path, split: str) -> Iterator[dict[str, Any]]:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        yield from _iter_saved_dataset(path, split)
        return
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".jsonl", ".parquet") and p.is_file())
    if not files:
        raise ValueError(f"{path}: folder holds no data files; supported: {SUPPORTED}")
    # Hub snapshots keep splits side by side (data/train-00000-of-00001.parquet): read only ours.
    in_split = [p for p in files if p.stem == split or p.stem.startswith(f"{split}-")]
    for p in in_split or files:
        yield from _iter_file(p)


def _iter_saved_dataset(path: Path, split: str) -> Iterator[dict[str, Any]]:
    import datasets  # optional dependency (train/curate extras)

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{path}: no split {split!r}; splits found: {', '.join(ds)}; pass split='<name>'")
        ds = ds[split]
    yield from ds


def _iter_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path}, line {lineno}: invalid JSON ({e.msg}); each line must be one JSON object"
                ) from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
            yield row


def _iter_parquet(path: Path) -> Iterator[dict[str, Any]]:
    pf = pq.ParquetFile(path)
    ours = _PARQUET_MARKER in (pf.schema_arrow.metadata or {})
    for batch in pf.iter_batches():
        for row in batch.to_pylist():
            if ours:
                row.update({c: json.loads(row[c]) for c in _JSON_COLUMNS})
            yield row


def _column_mapping(columns: list[str], source: str, column_map: Mapping[str, str], teacher: str) -> dict[str, str]:
    """field -> column: same-named columns, then the detected layout, then the user's column_map."""
    unknown = sorted(set(column_map) - set(_MAPPABLE))
    if unknown:
        raise ValueError(f"column_map keys {unknown} are not record fields; valid keys: {', '.join(_MAPPABLE)}")
    if any(f"{t}_thinking_trajectory" in columns for t in TEACHERS):
        layout, chosen = "s1K-1.1", {"thinking": f"{teacher}_thinking_trajectory", "attempt": f"{teacher}_attempt"}
    elif "thinking_trajectories" in columns:
        layout, chosen = "s1K", {"thinking": "thinking_trajectories"}
    else:
        layout, chosen = "plain", {}
    chosen.update(column_map)
    found = ", ".join(columns)
    for field, col in chosen.items():
        if col not in columns:
            other = " (or pick the other teacher: teacher='deepseek'|'gemini')" if layout == "s1K-1.1" else ""
            raise ValueError(
                f"{source}: column {col!r} for field {field!r} ({layout} layout) not found; "
                f"columns found: {found}; pass column_map={{{field!r}: '<your column>'}}{other}"
            )
    mapping = {f: f for f in _MAPPABLE if f in columns} | chosen
    if "question" not in mapping:
        raise ValueError(
            f"{source}: missing column 'question'; columns found: {found}; "
            "pass column_map={'question': '<your column>'}"
        )
    return mapping


def _to_record(row: Mapping[str, Any], mapping: Mapping[str, str], used: set[str], source: str, index: int) -> S1Record:
    extra = {k: v for k, v in row.items() if k not in used}
    if isinstance(extra.get("extra"), Mapping):  # save_records nests extra under "extra"
        extra.update(extra.pop("extra"))
    try:
        # Validated as data: the row's values are whatever the source holds.
        return S1Record.model_validate({**{f: row.get(col) for f, col in mapping.items()}, "extra": extra})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"{source}: row index {index}: {problems}") from e


def load_records(
    source: str | os.PathLike,
    *,
    column_map: Mapping[str, str] | None = None,
    teacher: str = "deepseek",
    split: str = "train",
) -> list[S1Record]:
    """Records from a path, file:// or pvc:// URI, or hf://org/name; see SUPPORTED for formats.

    The layout (s1K, s1K-1.1, plain field names) is detected from the columns; `teacher`
    picks the s1K-1.1 trace, `column_map` (field -> column) overrides detection.
    """
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, not {teacher!r}")
    rows = list(iter_rows(source, split=split))
    if not rows:
        raise ValueError(f"{source} has no rows")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    mapping = _column_mapping(columns, str(source), column_map or {}, teacher)
    used = set(mapping.values())
    return [_to_record(row, mapping, used, str(source), i) for i, row in enumerate(rows)]


def save_records(records: Iterable[S1Record], path: str | os.PathLike) -> Path:
    """Write records as JSON lines (.jsonl/.json) or Parquet (.parquet) in the plain layout."""
    out = local_path(str(path))
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise ValueError(f"{out}: unsupported format {suffix or '(no extension)'!r}; save as .jsonl, .json or .parquet")
    rows = [r.model_dump() for r in records]
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        for row in rows:
            row.update({c: json.dumps(row[c], ensure_ascii=False, default=str) for c in _JSON_COLUMNS})
        schema = pa.schema([(f, pa.string()) for f in _FIELDS], metadata={_PARQUET_MARKER: b"1"})
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    else:
        with out.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    return out
