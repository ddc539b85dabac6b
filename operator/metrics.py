"""Prometheus metrics of the operator, served on their own port at /metrics.

prometheus_client is imported only when metrics are switched on, so the operator (and its
tests) run without it; `start(0)` and a missing package both leave every call a no-op.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        # All three are set together by start(), or none is.
        self._reconciles: Counter | None = None
        self._errors: Counter | None = None
        self._latency: Histogram | None = None

    def start(self, port: int) -> None:
        if not port:
            return
        try:
            import prometheus_client as prom
        except ImportError:
            log.warning("metrics off: prometheus_client is not installed (pip install 'thinkube[k8s]')")
            return
        self._reconciles = prom.Counter(
            "thinkube_operator_reconciles", "reconciles, by kind and result", ["kind", "result"]
        )
        self._errors = prom.Counter(
            "thinkube_operator_reconcile_errors", "reconciles that raised (retried), by kind", ["kind"]
        )
        self._latency = prom.Histogram("thinkube_operator_reconcile_seconds", "time per reconcile, by kind", ["kind"])
        prom.start_http_server(port)
        log.info("metrics on :%d/metrics", port)

    def observe(self, kind: str, result: str, seconds: float) -> None:
        """result: the phase reached, or "error"."""
        if self._reconciles is None or self._errors is None or self._latency is None:
            return
        self._reconciles.labels(kind, result).inc()
        self._latency.labels(kind).observe(seconds)
        if result == "error":
            self._errors.labels(kind).inc()
