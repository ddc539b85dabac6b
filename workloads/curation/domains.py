"""Domains: each question's two-digit MSC 2020 code (s1's diversity axis).

Either a judge endpoint classifies each question with the MSC rubric shipped next to this
module (msc2020.tsv), or a user-supplied column holds the domain and no call is made.
A reply without a code from the rubric is re-asked (bounded), then marked "unknown".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from functools import lru_cache
from pathlib import Path

from thinkube.api.stages.curate import CurateConfig, Endpoint
from thinkube.workloads.curation.cache import CallCache, cache_key
from thinkube.workloads.curation.rows import StageResult, decide, prov, question_sha
from thinkube.workloads.formats import S1Record
from thinkube.workloads.llm.client import ChatClient

log = logging.getLogger(__name__)

RUBRIC_PATH = Path(__file__).with_name("msc2020.tsv")
UNKNOWN = "unknown"
PROMPT = """Classify the problem below into one top-level domain of the Mathematics Subject
Classification (MSC 2020). The two-digit codes:

{rubric}

Problem:
{question}

Reply with the two-digit code only."""
REASK = "Your reply held no two-digit code from the list. Reply with one code from the list, digits only."
# Questions are cut to keep classification calls cheap; the opening states the topic.
MAX_QUESTION_CHARS = 4000


@lru_cache(maxsize=1)
def msc_rubric() -> dict[str, str]:
    """code -> name, from the shipped data file."""
    rubric = {}
    for line in RUBRIC_PATH.read_text(encoding="utf-8").splitlines():
        code, _, name = line.partition("\t")
        rubric[code.strip()] = name.strip()
    return rubric


def parse_code(reply: str, codes: dict[str, str]) -> str | None:
    """The first standalone two-digit number in the reply that is an MSC code."""
    return next((m for m in re.findall(r"(?<!\d)(\d{2})(?!\d)", reply or "") if m in codes), None)


def domain_name(code: str) -> str:
    return msc_rubric().get(code, code)


def domains_from_column(records: list[S1Record], column: str) -> StageResult:
    """Domains from a column: the mapped `domain` field, else a raw source column."""
    for r in records:
        value = r.domain if column == "domain" else r.extra.get(column)
        if value is None and column != "domain" and column not in r.extra:
            found = sorted({"domain", *(k for k in r.extra if k != "curation")})
            raise ValueError(
                f"--domain-column {column!r}: row {r.id} (pool {prov(r)['source']}) has no such column; "
                f"columns found: {', '.join(found)}"
            )
        code = str(value).strip() if value is not None and str(value).strip() else UNKNOWN
        r.domain = code
        decide(r, "domains", {"from": f"column:{column}"})
    return StageResult(records, info={"method": f"column {column}"})


async def classify(records: list[S1Record], judge: Endpoint, cfg: CurateConfig, cache: CallCache) -> StageResult:
    rubric = msc_rubric()
    rubric_text = "\n".join(f"{c} {n}" for c, n in rubric.items())
    rubric_sha = hashlib.sha256(rubric_text.encode()).hexdigest()[:16]
    semaphore = asyncio.Semaphore(cfg.concurrency)
    calls = 0
    async with ChatClient(
        judge.url,
        model=judge.model,
        timeout_s=cfg.request_timeout_s,
        max_retries=cfg.max_retries,
        backoff_s=cfg.backoff_s,
    ) as client:

        async def one(question: str) -> dict:
            nonlocal calls
            key = cache_key(
                kind="domain",
                model=judge.model,
                question=question_sha(question),
                rubric=rubric_sha,
                retries=cfg.domain_retries,
            )
            hit = cache.get(key)
            if hit is not None:
                return hit
            messages = [
                {"role": "user", "content": PROMPT.format(rubric=rubric_text, question=question[:MAX_QUESTION_CHARS])}
            ]
            replies = []
            for _ in range(cfg.domain_retries + 1):
                async with semaphore:
                    text = (await client.chat(messages, temperature=0.0, max_tokens=16)).content
                calls += 1
                replies.append(text)
                code = parse_code(text, rubric)
                if code is not None:
                    break
                # Re-ask in the same conversation: at temperature 0 the same prompt gives the same reply.
                messages = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": REASK}]
            value = {"code": code or UNKNOWN, "replies": replies}
            cache.put(key, value)
            return value

        results = await asyncio.gather(*(one(r.question) for r in records))
    for r, value in zip(records, results):
        r.domain = value["code"]
        decide(r, "domains", {"from": f"judge:{judge.model}", "attempts": len(value["replies"])})
    unknown = sum(r.domain == UNKNOWN for r in records)
    log.info("domains: %d questions classified with %d new calls; %d unknown", len(records), calls, unknown)
    return StageResult(records, info={"method": f"judge {judge}", "calls": calls, "unknown": unknown})
