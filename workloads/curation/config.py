"""What a curation run is: every option of `thinkube curate`, validated in one place.

The CLI and a YAML/JSON config file both produce a `CurateConfig`; stages read only the
part they need, and the fingerprint of that part decides whether a stage's persisted
output in the run folder can be reused (see pipeline.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thinkube.constants import ENV_TEACHER_API_KEY
from thinkube.workloads.evaluation.grade import KINDS


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server and the model name to request from it (`URL@MODEL`)."""

    url: str
    model: str

    @classmethod
    def parse(cls, spec: str, option: str) -> Endpoint:
        # rpartition: a URL may itself contain '@' (user@host), the model name never does.
        url, sep, model = spec.rpartition("@")
        if not sep or not url.startswith(("http://", "https://")) or not model:
            raise ValueError(f"{option} {spec!r}: use URL@MODEL, e.g. http://127.0.0.1:8000@Qwen2.5-7B-Instruct")
        return cls(url, model)

    def __str__(self) -> str:
        return f"{self.url}@{self.model}"


class AutoIncludeRule(BaseModel):
    """Rows whose source (pool name or source_type) matches `source` and whose trace is
    longer than `min_trace_tokens` (when set) are selected before the random draw."""

    model_config = ConfigDict(extra="forbid")
    source: str
    min_trace_tokens: int | None = None


# s1's "benchmark-like" rows: GPQA, AIME, and MATH (its s1 source_type is qfq/openaimath/...)
# with a trace over 5,600 tokens. NuminaMath must not match the MATH rule.
S1_AUTO_INCLUDE = [
    AutoIncludeRule(source=r"(?i)gpqa"),
    AutoIncludeRule(source=r"(?i)aime"),
    AutoIncludeRule(source=r"(?i)openaimath|competition_math|(^|/)math(/|$)", min_trace_tokens=5600),
]


class TeacherConfig(BaseModel):
    """The teacher model whose thinking and attempt become each question's trace (s1: Gemini
    Flash Thinking; s1K-1.1: DeepSeek-R1), called over an OpenAI-compatible API."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str  # URL@MODEL
    # Name of the environment variable holding the API key: the key itself never sits in a
    # config file, an argument or a log (in a pod it comes from a Secret).
    api_key_env: str = ENV_TEACHER_API_KEY
    regenerate: bool = False  # True: every row, replacing its trace (as s1K-1.1 did); False: rows without one
    max_tokens: int = Field(32768, ge=1)  # completion cap per call (s1K-1.1's traces reach ~26K tokens)
    temperature: float = Field(0.0, ge=0)
    concurrency: int = Field(8, ge=1)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    timeout_s: float = Field(1800.0, gt=0)  # per call
    # Tokens (prompt and completion) the run may spend in all; rows left when it is spent fail
    # with that reason, and a rerun with a larger budget goes on from the cache.
    max_total_tokens: int | None = Field(None, ge=1)
    grade_with_judge: bool = False  # grade attempts with --judge instead of the offline grader

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        Endpoint.parse(v, "teacher.endpoint")
        return v

    def parsed(self) -> Endpoint:
        return Endpoint.parse(self.endpoint, "teacher.endpoint")


class CurateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str
    pools: dict[str, str]  # name -> URI
    column_maps: dict[str, dict[str, str]] = Field(default_factory=dict)  # pool name -> {field: column}
    decontaminate: dict[str, str] = Field(default_factory=dict)  # benchmark name -> URI
    benchmark_question_column: str | None = None  # default: the first of BENCHMARK_QUESTION_COLUMNS present
    ngram: int = 8
    # Quality rules: names from quality.RULES to switch off, and extra name -> regex on the question.
    disable_rules: list[str] = Field(default_factory=list)
    extra_rules: dict[str, str] = Field(default_factory=dict)
    asy_allowed_sources: str = r"(?i)aime"  # s1 keeps [asy] figures in AIME questions
    teacher: TeacherConfig | None = None  # None: the pools carry their traces; distill stage skipped
    base_models: list[str] = Field(default_factory=list)  # URL@MODEL; none: difficulty stage skipped
    judge: str | None = None  # URL@MODEL: domain classification, and difficulty grading with grade_with_judge
    grade_with_judge: bool = False
    answer_kinds: dict[str, str] = Field(default_factory=dict)  # pool name -> integer|math|choice
    max_tokens: int = 1024  # completion cap of each base-model call
    temperature: float = 0.0
    concurrency: int = 8
    max_retries: int = 5
    backoff_s: float = 0.5
    request_timeout_s: float = 600.0
    grade_workers: int = 0  # processes for offline grading (math-verify); 0: in this process
    domain_column: str | None = None  # take domains from this column; no judge calls
    domain_retries: int = 2  # re-asks when the judge's reply holds no MSC code; then "unknown"
    tokenizer: str | None = None  # 'tiny', a folder or hf id; None: whitespace word count
    auto_include: list[AutoIncludeRule] = Field(default_factory=lambda: list(S1_AUTO_INCLUDE))
    teacher_grade_column: str | None = None  # default: the first of TEACHER_GRADE_COLUMNS present
    target_size: int = 1000
    seed: int = 0
    allow_smaller: bool = False

    @field_validator("answer_kinds")
    @classmethod
    def _kinds(cls, v: dict[str, str]) -> dict[str, str]:
        for name, kind in v.items():
            if kind not in KINDS:
                raise ValueError(f"answer_kinds[{name!r}] = {kind!r}: use one of {', '.join(KINDS)}")
        return v

    @field_validator("extra_rules")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"extra_rules[{name!r}]: invalid regex {pattern!r} ({e})") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CurateConfig:
        if not self.pools:
            raise ValueError("give at least one pool: --pool NAME=URI")
        for what, names in (("column_maps", self.column_maps), ("answer_kinds", self.answer_kinds)):
            unknown = sorted(set(names) - set(self.pools))
            if unknown:
                raise ValueError(f"{what} names {unknown} are not pools; pools: {', '.join(self.pools)}")
        models = [self.base_model(i).model for i in range(len(self.base_models))]
        if len(set(models)) != len(models):
            # The call cache is keyed by model name, so two endpoints must not share one.
            raise ValueError(f"base models must have distinct model names, got {models}")
        if self.judge is not None:
            Endpoint.parse(self.judge, "--judge")
        if (self.grade_with_judge or (self.teacher and self.teacher.grade_with_judge)) and self.judge is None:
            raise ValueError("grade_with_judge needs --judge URL@MODEL")
        if self.domain_column is None and self.judge is None:
            raise ValueError("domains need either --domain-column COL (no calls) or --judge URL@MODEL (MSC classification)")
        if self.target_size < 1:
            raise ValueError(f"target_size must be at least 1, got {self.target_size}")
        if self.ngram < 1 or self.concurrency < 1:
            raise ValueError("ngram and concurrency must be at least 1")
        return self

    def base_model(self, i: int) -> Endpoint:
        return Endpoint.parse(self.base_models[i], "--base-model")

    def judge_endpoint(self) -> Endpoint | None:
        return Endpoint.parse(self.judge, "--judge") if self.judge else None
