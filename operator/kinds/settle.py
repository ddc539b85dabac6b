"""Fields of a child that someone else owns: Kueue owns a queued Job's `suspend`, an
autoscaler owns a Deployment's `replicas`. Builders mark them None ("not ours to set");
`settle` fills them from the live object, so server-side apply neither fights the owner nor
drops the field (omitting a field we applied before would reset it to its default).
"""

from __future__ import annotations

import copy
from typing import Mapping


def settle(desired: Mapping, live: Mapping | None) -> dict:
    out = copy.deepcopy(dict(desired))
    spec, live_spec = out.get("spec", {}), (live or {}).get("spec", {})
    if out["kind"] == "Job" and "suspend" in spec and spec["suspend"] is None:
        # Created suspended so the queue admits it; afterwards whatever Kueue set stays.
        spec["suspend"] = live_spec.get("suspend", False) if live else True
    if out["kind"] == "Deployment" and "replicas" in spec and spec["replicas"] is None:
        # First creation: the Deployment default (1). After a suspension (0), back to 1,
        # because an autoscaler never scales up from 0.
        spec["replicas"] = (live_spec.get("replicas") or 1) if live else 1
    return out
