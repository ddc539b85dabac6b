"""Distillation: a teacher model writes each question's reasoning trace and attempt.

s1 called Gemini Flash Thinking on its 59K questions, kept the thinking and the attempt,
dropped the rows whose call failed and graded the attempts against the reference solutions
(the auto-include rule reads that grade); s1K-1.1 regenerated the same questions with
DeepSeek-R1. Here each row without a trace (every row with `teacher.regenerate`) gets one
chat call. The thinking comes from `reasoning_content` (R1-style servers, vLLM, `thinkube
serve`) or from `<think>` tags in the content. Calls run with bounded concurrency under
request and token rate limits, retry with back-off (honouring Retry-After), and are cached
by question, teacher and sampling settings, so a killed run resumes without repeating one.
A failed call is recorded on its row, and the quality stage drops the row with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
from collections import Counter

from thinkube.api.stages.curate import CurateConfig, TeacherConfig
from thinkube.workloads.curation.cache import CallCache, cache_key
from thinkube.workloads.curation.difficulty import answer_kind, judge_all, reference_answer
from thinkube.workloads.curation.rows import StageResult, prov, question_sha
from thinkube.workloads.curation.select import TEACHER_GRADE_COLUMNS
from thinkube.workloads.formats import S1Record
from thinkube.workloads.formats.chat import THINK_TAGS_FORMAT
from thinkube.workloads.grading.grade import grade_many
from thinkube.workloads.llm.client import ChatClient, api_base
from thinkube.workloads.llm.ratelimit import RateLimiter
from thinkube.workloads.llm.reply import ChatReply, LLMError
from thinkube.workloads.progress import Progress

log = logging.getLogger(__name__)

PROMPT_VERSION = 1  # part of every cache key: bump when the request changes
GRADE_COLUMN = "teacher_correct"  # where the teacher's grade goes unless teacher_grade_column says otherwise
DISTILL = "distill"  # provenance key
REPLY_FORMAT = THINK_TAGS_FORMAT  # R1-style text without a reasoning field is split at its `</think>`


def split_reply(r: ChatReply) -> dict:
    """The teacher's thinking, attempt, finish reason and token usage, as cached."""
    return {
        "thinking": (r.thinking or "").strip(),
        "attempt": r.content.strip(),
        "finish_reason": r.finish_reason,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "reasoning_tokens": r.reasoning_tokens,
    }


def failure(value: dict, max_tokens: int) -> str | None:
    """Why a reply cannot be used as a trace, or None."""
    if value["finish_reason"] == "length":
        return f"cut at max_tokens {max_tokens}: raise teacher.max_tokens"
    if not value["thinking"]:
        return "no thinking in the reply (neither reasoning_content nor <think> tags)"
    if not value["attempt"]:
        return "no attempt after the thinking"
    return None


def needs_trace(record: S1Record, teacher: TeacherConfig) -> bool:
    return teacher.regenerate or not (record.thinking or "").strip() or not (record.attempt or "").strip()


def histogram(lengths: list[int]) -> dict[str, int]:
    """Counts per power-of-two bucket of trace tokens ("<=256": traces of 129..256 tokens)."""
    buckets = Counter(2 ** max(0, math.ceil(math.log2(max(n, 1)))) for n in lengths)
    return {f"<={b}": buckets[b] for b in sorted(buckets)}


class _Calls:
    """The teacher calls of one stage run, with their running totals."""

    def __init__(self, cfg: CurateConfig, teacher: TeacherConfig, cache: CallCache):
        self.cfg, self.teacher, self.cache = cfg, teacher, cache
        self.endpoint = teacher.parsed()
        self.settings = {
            "prompt_version": PROMPT_VERSION,
            "max_tokens": teacher.max_tokens,
            "temperature": teacher.temperature,
        }
        self.limiter = RateLimiter(teacher.requests_per_minute, teacher.tokens_per_minute)
        self.made = self.failed = self.tokens_in = self.tokens_out = 0

    def key(self, question: str) -> str:
        return cache_key(
            kind="teacher",
            model=self.endpoint.model,
            url=api_base(self.endpoint.url),
            question=question_sha(question),
            settings=self.settings,
        )

    def figures(self) -> str:
        return f"tokens in {self.tokens_in:,} out {self.tokens_out:,}, failed {self.failed}"

    async def one(self, client: ChatClient, question: str, key: str) -> dict:
        budget = self.teacher.max_total_tokens
        if budget is not None and self.tokens_in + self.tokens_out >= budget:  # calls in flight may overshoot it
            self.failed += 1
            return {
                "error": f"token budget of {budget:,} spent: raise teacher.max_total_tokens and rerun",
                "error_kind": "token budget spent",
            }
        estimate = len(question) // 4 + 1  # the prompt's tokens, roughly, for the limiter; the reply says exactly
        try:
            reply = await client.chat(
                [{"role": "user", "content": question}],
                chat_format=REPLY_FORMAT,
                tokens=estimate,
                max_tokens=self.teacher.max_tokens,
                temperature=self.teacher.temperature,
            )
            value = split_reply(reply)
        except LLMError as e:  # not cached: a stage that runs again (killed, or new settings) asks again
            self.failed += 1
            status = re.search(r"HTTP (\d{3})", str(e))
            return {"error": str(e)[:500], "error_kind": f"HTTP {status.group(1)}" if status else "no reply"}
        self.made += 1
        self.tokens_in += value["prompt_tokens"] or 0
        self.tokens_out += value["completion_tokens"] or 0
        self.cache.put(key, value)
        return value


async def _ask(questions: dict[str, str], calls: _Calls) -> dict[str, dict]:
    """question sha -> the cached or new reply (or {"error": ...})."""
    replies: dict[str, dict] = {}
    todo: list[tuple[str, str, str]] = []
    for sha, question in questions.items():
        key = calls.key(question)
        hit = calls.cache.get(key)
        if hit is None:
            todo.append((sha, question, key))
        else:
            replies[sha] = hit
    log.info(
        "distill: %d of %d teacher calls cached, %d to make (%s)",
        len(replies),
        len(questions),
        len(todo),
        calls.endpoint,
    )
    if not todo:
        return replies
    semaphore = asyncio.Semaphore(calls.teacher.concurrency)
    client = ChatClient(
        calls.endpoint.url,
        model=calls.endpoint.model,
        api_key=os.environ.get(calls.teacher.api_key_env),
        timeout_s=calls.teacher.timeout_seconds,
        max_retries=calls.cfg.max_retries,
        backoff_s=calls.cfg.backoff_s,
        limiter=calls.limiter,
    )
    async with client:
        with Progress(log, "distill", len(todo), figures=calls.figures) as progress:

            async def one(sha: str, question: str, key: str) -> None:
                async with semaphore:
                    replies[sha] = await calls.one(client, question, key)
                progress.tick()

            await asyncio.gather(*(one(*job) for job in todo))
    return replies


async def _grade(rows: list[S1Record], cfg: CurateConfig, cache: CallCache) -> Counter:
    """The teacher's attempt against the reference, into the grade column selection reads;
    returns the count of each grade (correct, wrong, ungraded)."""
    column = cfg.teacher_grade_column or GRADE_COLUMN
    graded = [(r, reference_answer(r.solution), r.attempt or "") for r in rows if r.solution and r.solution.strip()]
    verdicts = grade_many(
        [(answer_kind(r, cfg), reference, attempt, 4) for r, reference, attempt in graded], workers=cfg.grade_workers
    )
    correct: dict[str, bool | None] = {prov(r)["uid"]: v.correct for (r, _, _), v in zip(graded, verdicts)}
    judge = cfg.judge_endpoint() if cfg.teacher is not None and cfg.teacher.grade_with_judge else None
    if judge is not None:
        jobs = [
            (
                cache_key(kind="judge", model=judge.model, question=question_sha(r.question), answer=attempt),
                r.question,
                reference,
                attempt,
            )
            for r, reference, attempt in graded
        ]
        verdict_of = await judge_all(jobs, judge, cfg, cache)
        for (r, _, _), job in zip(graded, jobs):
            if verdict_of[job[0]] is not None:  # no verdict word: the offline grade stands
                correct[prov(r)["uid"]] = verdict_of[job[0]]
    for r in rows:
        for stale in TEACHER_GRADE_COLUMNS:  # another teacher's grade would describe another trace
            r.extra.pop(stale, None)
        r.extra[column] = correct.get(prov(r)["uid"])
        prov(r)[DISTILL]["correct"] = r.extra[column]
    return Counter({True: "correct", False: "wrong", None: "ungraded"}[r.extra[column]] for r in rows)


async def distill(records: list[S1Record], cfg: CurateConfig, cache: CallCache) -> StageResult:
    teacher = cfg.teacher
    assert teacher is not None, "the pipeline runs distillation only with a teacher"
    calls = _Calls(cfg, teacher, cache)
    asked = [r for r in records if needs_trace(r, teacher)]
    asked_ids = {id(r) for r in asked}
    replies = await _ask({question_sha(r.question): r.question for r in asked}, calls)
    traced: list[S1Record] = []
    failures: Counter[str] = Counter()
    lengths: list[int] = []
    for r in records:
        if id(r) not in asked_ids:
            prov(r)[DISTILL] = {"from": "pool"}
            continue
        value = replies[question_sha(r.question)]
        problem = value.get("error") or failure(value, teacher.max_tokens)
        usage = {k: value.get(k) for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens")}
        prov(r)[DISTILL] = {"from": str(calls.endpoint), **usage, "finish_reason": value.get("finish_reason")}
        if problem:
            prov(r)[DISTILL]["error"] = problem
            r.thinking = r.attempt = None
            failures[value.get("error_kind") or problem.split(":")[0]] += 1
            continue
        r.thinking, r.attempt = value["thinking"], value["attempt"]
        lengths.append(value["reasoning_tokens"] or value["completion_tokens"] or len(value["thinking"].split()))
        traced.append(r)
    grades = await _grade(traced, cfg, cache)
    return StageResult(
        records,
        info={
            "teacher": str(calls.endpoint),
            "asked": len(asked),
            "calls_made": calls.made,
            "cached": len(asked) - calls.made - calls.failed,
            "failed": sum(failures.values()),
            "failures": dict(failures),
            "tokens_in": calls.tokens_in,
            "tokens_out": calls.tokens_out,
            "rate_limit_pauses": calls.limiter.pauses,
            "trace_tokens": histogram(lengths),
            "teacher_grades": dict(grades),
        },
    )
