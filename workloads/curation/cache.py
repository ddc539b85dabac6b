"""Append-only JSONL cache of model calls, so a rerun never repeats a finished call.

One line per finished call, flushed at once: a run killed mid-stage keeps every call that
completed. A torn last line (killed while writing) is skipped on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CallCache:
    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        if path.exists():
            with path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        log.warning("%s line %d: torn entry skipped (the call will be made again)", path, lineno)
                        continue
                    self.entries[entry["key"]] = entry["value"]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict) -> None:
        self.entries[key] = value
        self._file.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
