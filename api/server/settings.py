"""What `thinkube api` runs with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from thinkube.constants import DEFAULT_PVC_ROOT, ENV_PVC_ROOT, PROGRESS_AUDIENCE


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    audience: str = PROGRESS_AUDIENCE  # of the tokens trainers report progress with
    review_cache_seconds: float = 10.0  # 0: review every request
    max_body_bytes: int = 1024 * 1024
    log_format: str = "json"
    pvc_root: Path = Path(os.environ.get(ENV_PVC_ROOT, DEFAULT_PVC_ROOT))
    namespace: str | None = None  # where the control plane runs; results are read for runs there
    cookie_secure: bool = False  # set behind TLS so the dashboard's token cookie never travels in clear
