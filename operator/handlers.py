"""kopf wiring: every kind reconciles on create, update (suspend/resume included), operator
resume and a resync timer, and says so on delete; the work itself is thinkube.operator.reconcile.

Each reconcile re-reads the object and patches its status itself, under a per-object lock:
kopf runs change handlers and timers concurrently, and the body kopf hands over can be
older than a status patch a moment ago.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import kopf

from thinkube.api.resources import KINDS
from thinkube.constants import ANNOTATION_PROGRESS, API_VERSION, FINALIZER, GROUP, VERSION
from thinkube.operator.kinds import Defaults
from thinkube.operator.kube import Kube
from thinkube.operator.metrics import Metrics
from thinkube.operator.reconcile import reconcile
from thinkube.operator.report import status_patch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operator:
    kube: Kube
    defaults: Defaults
    metrics: Metrics
    resync_seconds: float

    def sync(self, body: kopf.Body, memo: kopf.Memo) -> None:
        kind, meta = body["kind"], body["metadata"]
        with memo.setdefault("lock", threading.Lock()):
            started = time.monotonic()
            try:
                phase = self._sync(body, kind, meta["namespace"], meta["name"])
            except Exception:
                self.metrics.observe(kind, "error", time.monotonic() - started)
                raise  # kopf retries change handlers with backoff; the timer tries again anyway
            self.metrics.observe(kind, phase or "gone", time.monotonic() - started)

    def _sync(self, body: kopf.Body, kind: str, namespace: str, name: str) -> str | None:
        fresh = self.kube.get(API_VERSION, kind, namespace, name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return None  # owner references hand the children to the garbage collector
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        status, events = reconcile(fresh, self.kube, self.defaults, now)
        patch = status_patch(fresh.get("status") or {}, status)
        if patch:
            self.kube.patch_status(API_VERSION, kind, namespace, name, patch)
        for e in events:
            kopf.event(body, type=e.type, reason=e.reason, message=e.message)
        return status.get("phase")

    def deleting(self, body: kopf.Body) -> None:
        """Only says so: the children carry owner references, so the garbage collector deletes them."""
        meta = body["metadata"]
        log.info(
            "%s %s/%s is being deleted; the garbage collector deletes its children",
            body["kind"],
            meta["namespace"],
            meta["name"],
        )
        kopf.event(
            body,
            type="Normal",
            reason="Deleting",
            message="its children go with it (owner references, garbage collection)",
        )


def configure(settings: kopf.OperatorSettings, server_timeout_s: int) -> None:
    prefix, _, key = ANNOTATION_PROGRESS.partition("/")
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix, key=key)
    # Annotations, not status: the CRDs' structural schemas would prune kopf's status fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    # Watches end server-side before any proxy or load balancer cuts them silently.
    settings.watching.server_timeout = server_timeout_s
    settings.watching.client_timeout = server_timeout_s + 30
    settings.watching.connect_timeout = 30
    # A deleted resource is released once its resync timer has stopped; a timer caught inside a
    # reconcile (a thread, tens of ms) would otherwise be polled only every 60 s.
    settings.background.instant_exit_timeout = 1.0
    settings.background.cancellation_polling = 5
    settings.posting.reporting_component = "thinkube-operator"
    settings.posting.level = logging.WARNING  # our own events say what happened; kopf's per-handler ones are noise


def register(registry: kopf.OperatorRegistry, op: Operator) -> None:
    def handler(body: kopf.Body, memo: kopf.Memo, **_) -> None:
        op.sync(body, memo)

    def deleting(body: kopf.Body, **_) -> None:
        op.deleting(body)

    for resource in KINDS:
        what = (GROUP, VERSION, resource.names.plural)
        kopf.on.create(*what, registry=registry, id="create")(handler)
        kopf.on.update(*what, registry=registry, id="update")(handler)
        kopf.on.resume(*what, registry=registry, id="resume")(handler)
        # The first tick one period late: creation (and resume) is already being reconciled.
        kopf.timer(*what, registry=registry, id="resync", interval=op.resync_seconds, initial_delay=op.resync_seconds)(
            handler
        )
        # optional: no finalizer of its own; errors ignored: a failure must not hold the deletion up.
        kopf.on.delete(*what, registry=registry, id="delete", optional=True, errors=kopf.ErrorsMode.IGNORED)(deleting)

    @kopf.on.login(registry=registry)
    def login(**kwargs):
        return kopf.login_via_client(**kwargs)
