"""Difficulty filter: drop every question that ANY base model solves (s1: Qwen2.5-7B and -32B).

Calls go to OpenAI-compatible endpoints with bounded concurrency and the chat client's retries;
each finished call is cached (model name, question hash, request settings), so a killed or
failed run resumes without repeating it. Answers are graded offline by the evaluation
grader against the reference's extracted answer, or by an optional LLM judge.
"""

from __future__ import annotations

import asyncio
import logging

from thinkube.api.stages.curate import CurateConfig, Endpoint
from thinkube.workloads.curation.cache import CallCache, cache_key
from thinkube.workloads.curation.rows import StageResult, decide, prov, question_sha, source_label
from thinkube.workloads.formats import S1Record
from thinkube.workloads.grading.extract import extract_answer
from thinkube.workloads.grading.grade import grade_many, parse_integer
from thinkube.workloads.grading.judge import LLMJudge
from thinkube.workloads.llm.client import ChatClient
from thinkube.workloads.progress import Progress

log = logging.getLogger(__name__)

# Bump when the prompt changes: it is part of every cache key.
PROMPT_VERSION = 1
PROMPT = "{question}\n\nPut your final answer within \\boxed{{}}."


def reference_answer(solution: str | None) -> str:
    """The final answer of a reference: s1's solutions are often whole worked solutions."""
    return extract_answer(solution or "") or (solution or "").strip()


def answer_kind(record: S1Record, cfg: CurateConfig) -> str:
    """Configured per pool, else integer for AIME-like sources (answers 0-999), else math."""
    configured = cfg.answer_kinds.get(prov(record)["source"])
    if configured:
        return configured
    # An AIME-like row whose reference is not an integer is graded as math rather than failing the run.
    aime = "aime" in source_label(record).lower()
    return "integer" if aime and parse_integer(reference_answer(record.solution)) is not None else "math"


async def _ask_base_models(
    records: list[S1Record], endpoints: list[Endpoint], cfg: CurateConfig, cache: CallCache
) -> dict[tuple[str, str], dict]:
    """(model, question sha) -> the cached or new reply {answer, reasoning, finish_reason}."""
    settings = {
        "prompt_version": PROMPT_VERSION,
        "max_tokens": cfg.max_tokens,
        "temperature": cfg.temperature,
        "seed": cfg.seed,
    }
    todo: list[tuple[int, str, str, str]] = []
    replies: dict[tuple[str, str], dict] = {}
    for i, ep in enumerate(endpoints):
        for sha, question in {question_sha(r.question): r.question for r in records}.items():
            key = cache_key(kind="base", model=ep.model, question=sha, settings=settings)
            hit = cache.get(key)
            if hit is None:
                todo.append((i, sha, question, key))
            else:
                replies[ep.model, sha] = hit
    log.info("difficulty: %d calls cached, %d to make over %d base model(s)", len(replies), len(todo), len(endpoints))
    if not todo:
        return replies
    semaphore = asyncio.Semaphore(cfg.concurrency)
    clients = [
        ChatClient(
            ep.url,
            model=ep.model,
            timeout_s=cfg.request_timeout_s,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
        )
        for ep in endpoints
    ]

    async def one(i: int, sha: str, question: str, key: str) -> None:
        client = clients[i]
        async with semaphore:
            r = await client.chat(
                [{"role": "user", "content": PROMPT.format(question=question)}],
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                seed=cfg.seed,
            )
        value = {"answer": r.content, "reasoning": r.thinking or "", "finish_reason": r.finish_reason}
        cache.put(key, value)
        replies[endpoints[i].model, sha] = value
        progress.tick()

    with Progress(log, "difficulty", len(todo)) as progress:
        tasks = [asyncio.ensure_future(one(*job)) for job in todo]
        try:
            await asyncio.gather(*tasks)
        finally:  # a failure or a cancel: stop the siblings; what finished is in the cache
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.aclose()
    return replies


async def judge_all(
    jobs: list[tuple[str, str, str, str]], judge: Endpoint, cfg: CurateConfig, cache: CallCache
) -> dict[str, bool | None]:
    """cache key -> the judge's verdict, for (key, question, reference, answer) jobs."""
    verdicts = {key: hit["verdict"] for key, *_ in jobs if (hit := cache.get(key)) is not None}
    pending = [job for job in jobs if job[0] not in verdicts]
    semaphore = asyncio.Semaphore(cfg.concurrency)
    llm = LLMJudge(judge.url, judge.model, timeout_s=cfg.request_timeout_s, max_retries=cfg.max_retries)

    async def one(key: str, question: str, reference: str, answer: str) -> None:
        async with semaphore:
            verdicts[key] = await llm.judge(question, reference, answer)
        cache.put(key, {"verdict": verdicts[key]})

    try:
        await asyncio.gather(*(one(*job) for job in pending))
    finally:
        await llm.aclose()
    return verdicts


async def difficulty_filter(records: list[S1Record], cfg: CurateConfig, cache: CallCache) -> StageResult:
    endpoints = [cfg.base_model(i) for i in range(len(cfg.base_models))]
    replies = await _ask_base_models(records, endpoints, cfg, cache)
    # Rows without a reference cannot be graded: they are kept, as nothing shows a model solves them.
    graded = [
        (r, ep, replies[ep.model, question_sha(r.question)]["answer"])
        for r in records
        if r.solution and r.solution.strip()
        for ep in endpoints
    ]
    verdicts = grade_many(
        [(answer_kind(r, cfg), reference_answer(r.solution), answer, 4) for r, _, answer in graded],
        workers=cfg.grade_workers,
    )
    entries: dict[str, dict] = {prov(r)["uid"]: {} for r in records}
    for (r, ep, _), v in zip(graded, verdicts):
        entries[prov(r)["uid"]][ep.model] = {
            "kind": answer_kind(r, cfg),
            "extracted": v.extracted,
            "correct": v.correct,
            "method": v.method,
        }
    judge = cfg.judge_endpoint() if cfg.grade_with_judge else None
    if judge is not None:
        jobs = [
            (
                cache_key(kind="judge", model=judge.model, question=question_sha(r.question), answer=answer),
                r.question,
                reference_answer(r.solution),
                answer,
            )
            for r, _, answer in graded
        ]
        verdict_of = await judge_all(jobs, judge, cfg, cache)
        for (r, ep, _), job in zip(graded, jobs):
            entry = entries[prov(r)["uid"]][ep.model]
            # A reply without a verdict word leaves the offline grade in charge, never a default.
            entry["judge"] = verdict_of[job[0]]
            if entry["judge"] is not None:
                entry["correct"] = entry["judge"]
    result = StageResult(
        [],
        info={
            "base_models": [str(ep) for ep in endpoints],
            "no_reference": 0,
            "solved_by": {ep.model: 0 for ep in endpoints},
        },
    )
    for r in records:
        models = entries[prov(r)["uid"]]
        result.info["no_reference"] += not models
        decide(r, "difficulty", models or {"reference": None})
        solvers = [m for m, e in models.items() if e["correct"]]
        for m in solvers:
            result.info["solved_by"][m] += 1
        if solvers:
            result.dropped.append((r, "solved"))
        else:
            result.kept.append(r)
    return result
