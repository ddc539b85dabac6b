"""SFTRun whole-gang restarts: which attempt is current, and whether to start the next one.

Attempts are numbered Jobs (label thinkube.dev/attempt). The current attempt is the highest
one seen, on the Jobs or in status.restarts (so deleting a Job does not reset the count).
"""

from __future__ import annotations

from typing import Iterable

from thinkube.api.resources import SFTRun
from thinkube.constants import LABEL_ATTEMPT
from thinkube.operator.observe import POD_FAILURE_POLICY, true_conditions


def attempt_of(job: dict) -> int:
    return int(job["metadata"].get("labels", {}).get(LABEL_ATTEMPT, 0))


def next_attempt(run: SFTRun, jobs: Iterable[dict], recorded: int) -> tuple[int, str | None]:
    """(attempt to run, why it is a restart or None)."""
    jobs = list(jobs)
    attempt = max([recorded, *map(attempt_of, jobs)])
    live = next((j for j in jobs if attempt_of(j) == attempt), None)
    failed = true_conditions(live).get("Failed") if live else None
    # A bad config (podFailurePolicy) fails every attempt the same way: never restart it.
    if failed and failed.get("reason") != POD_FAILURE_POLICY and attempt < run.spec.max_restarts:
        return attempt + 1, (
            f"attempt {attempt} failed ({failed.get('reason')}): restarting all "
            f"{run.spec.nodes} pods as attempt {attempt + 1} of at most {run.spec.max_restarts + 1}"
        )
    return attempt, None
