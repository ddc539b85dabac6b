"""Append-only JSONL record files: one per (benchmark, setting), one line per sample.

A sweep resumes by reading what is already there and skipping those (item, sample) keys.
A process killed mid-write can leave a torn last line; it is cut off on open, so the file
stays valid JSONL and the torn sample is simply generated again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)


def record_key(record: dict) -> tuple[str, int]:
    return record["item_id"], record["sample"]


class RecordFile:
    def __init__(self, path: Path):
        self.path = path
        self._handle: TextIO | None = None

    def load(self) -> list[dict]:
        """Every complete record; repairs a torn tail left by a crash."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning(
                "%s: dropping a torn last line (%d bytes) left by an interrupted run", self.path, len(data) - end
            )
            with self.path.open("r+b") as f:
                f.truncate(end)
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]

    def append(self, record: dict) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        # One write per line and a flush: a killed process loses at most the line in flight.
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def records_dir(out: Path) -> Path:
    return out / "records"


def record_path(out: Path, benchmark: str, setting_key: str) -> Path:
    return records_dir(out) / benchmark / f"{setting_key}.jsonl"


def read_all(out: Path) -> dict[str, dict[str, list[dict]]]:
    """benchmark -> setting key -> records, for every record file under `out`."""
    result: dict[str, dict[str, list[dict]]] = {}
    root = records_dir(out)
    if not root.is_dir():
        return result
    for bench_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(bench_dir.glob("*.jsonl")):
            records = RecordFile(f).load()
            if records:
                result.setdefault(bench_dir.name, {})[f.stem] = records
    return result
