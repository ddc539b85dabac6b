"""`thinkube curate`'s settings: what a CurationJob's spec holds, and what a run adds to it.

`CurateSettings` is embedded by the CurationJob spec (its fields are the spec's, its rules
are CEL rules there too); `CurateConfig` adds the output folder, the endpoints the operator
resolved and the call settings. Stages read only the part they need, and the fingerprint of
that part decides whether a stage's persisted output can be reused (curation/pipeline.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from thinkube.api.model import Model, Rule
from thinkube.constants import ENV_TEACHER_API_KEY

AnswerKind = Literal["integer", "math", "choice"]
# What a curation run leaves in its output folder for training (an SFTRun reads it from there).
SELECTED_JSONL, SELECTED_PARQUET = "selected.jsonl", "selected.parquet"


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


class AutoIncludeRule(Model):
    """Rows whose source (pool name or source_type) matches `source` and whose trace is
    longer than `minTraceTokens` (when set) are selected before the random draw."""

    source: str = Field(min_length=1, max_length=1024, description="regular expression on the row's source")
    min_trace_tokens: int | None = Field(default=None, ge=1)


# s1's "benchmark-like" rows: GPQA, AIME, and MATH (its s1 source_type is qfq/openaimath/...)
# with a trace over 5,600 tokens. NuminaMath must not match the MATH rule.
S1_AUTO_INCLUDE = [
    AutoIncludeRule(source=r"(?i)gpqa"),
    AutoIncludeRule(source=r"(?i)aime"),
    AutoIncludeRule(source=r"(?i)openaimath|competition_math|(^|/)math(/|$)", min_trace_tokens=5600),
]


class TeacherSettings(Model):
    """How the teacher is called; where it is and its key differ between a resource and a run."""

    regenerate: bool = Field(
        default=False,
        description=(
            "true: ask the teacher for every question, replacing traces the pools carry (as s1K-1.1 did); "
            "false: only questions without a trace"
        ),
    )
    max_tokens: int = Field(
        default=32768,
        ge=1,
        le=1_048_576,
        description=("completion cap of each teacher call (s1K-1.1's traces reach ~26K tokens)"),
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="sampling temperature of the teacher calls")
    concurrency: int = Field(default=8, ge=1, le=1024, description="teacher calls in flight")
    requests_per_minute: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description=("rate limit on teacher calls (a hosted API's quota); unset: no limit"),
    )
    tokens_per_minute: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000_000,
        description=("rate limit on teacher tokens (a hosted API's quota); unset: no limit"),
    )
    timeout_seconds: int = Field(
        default=1800, ge=1, le=86_400, description=("how long one teacher call may take (a long trace takes minutes)")
    )
    max_total_tokens: int | None = Field(
        default=None,
        ge=1,
        le=10**12,
        description=(
            "tokens (prompt and completion) the run may spend on teacher calls in all; rows left when it is spent "
            "fail with that reason, and rerunning with a larger budget goes on from the cache; unset: no cap"
        ),
    )
    grade_with_judge: bool = Field(
        default=False,
        description=("grade the teacher's attempts with the judge instead of the offline grader; needs judge"),
    )


class TeacherConfig(TeacherSettings):
    """The teacher model whose thinking and attempt become each question's trace (s1: Gemini
    Flash Thinking; s1K-1.1: DeepSeek-R1), called over an OpenAI-compatible API."""

    endpoint: str = Field(description="URL@MODEL of an OpenAI-compatible API")
    # Name of the environment variable holding the API key: the key itself never sits in a
    # config file, an argument or a log (in a pod it comes from a Secret).
    api_key_env: str = ENV_TEACHER_API_KEY

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        Endpoint.parse(v, "teacher.endpoint")
        return v

    def parsed(self) -> Endpoint:
        return Endpoint.parse(self.endpoint, "teacher.endpoint")


class CurateSettings(Model):
    """What a user decides about a curation run; a CurationJob's spec embeds these fields."""

    # Declared again so that the CurationJob spec may extend it.
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "has(self.judge) || has(self.domainColumn)",
            "set judge (URL@MODEL, classifies questions into MSC domains; --judge) or domainColumn (domains given in "
            "the pool; --domain-column)",
            field_path=".judge",
            check=lambda s: s.judge is not None or s.domain_column is not None,
        ),
        Rule(
            "!self.gradeWithJudge || has(self.judge)",
            "gradeWithJudge needs judge (URL@MODEL)",
            field_path=".gradeWithJudge",
            check=lambda s: not s.grade_with_judge or s.judge is not None,
        ),
        Rule(
            "!has(self.teacher) || !self.teacher.gradeWithJudge || has(self.judge)",
            "the teacher's gradeWithJudge needs judge (URL@MODEL), the model that grades its attempts",
            field_path=".teacher.gradeWithJudge",
            check=lambda s: s.teacher is None or not s.teacher.grade_with_judge or s.judge is not None,
        ),
        Rule(
            "!has(self.columnMaps) || self.columnMaps.all(k, k in self.pools)",
            "every columnMaps key must name a pool",
            field_path=".columnMaps",
            check=lambda s: set(s.column_maps) <= set(s.pools),
        ),
        Rule(
            "!has(self.answerKinds) || self.answerKinds.all(k, k in self.pools)",
            "every answerKinds key must name a pool",
            field_path=".answerKinds",
            check=lambda s: set(s.answer_kinds) <= set(s.pools),
        ),
    )
    pools: dict[str, str] = Field(
        min_length=1,
        max_length=64,
        description=("question pools by name: JSONL, Parquet, a saved dataset folder or hf://"),
    )
    column_maps: dict[str, dict[str, str]] = Field(
        default_factory=dict, max_length=64, description=("per pool: record field -> the pool's column name")
    )
    decontaminate: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description=("benchmarks by name whose questions must not leak into the selection (n-gram overlap)"),
    )
    benchmark_question_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description=("question column of the benchmark files; default: the first of question, problem, ... present"),
    )
    ngram: int = Field(
        default=8,
        ge=1,
        le=64,
        description=("decontamination word n-gram size (s1: 8; templated synthetic questions need longer grams)"),
    )
    disable_rules: list[str] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "quality rules to switch off: teacher_failed, missing_thinking, missing_attempt, asy, image, numbering, "
            "bold_digits"
        ),
    )
    extra_rules: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description=("extra quality rules: name -> regular expression; questions matching it are dropped"),
    )
    asy_allowed_sources: str = Field(
        default=r"(?i)aime",
        max_length=1024,
        description=("sources whose [asy] figures are kept (s1 keeps them in AIME questions)"),
    )
    base_models: list[str] = Field(
        default_factory=list,
        max_length=8,
        description=(
            "base models as URL@MODEL; questions any of them solves are dropped (s1: Qwen2.5-7B and -32B Instruct); "
            "none: the difficulty filter is skipped"
        ),
    )
    teacher: TeacherSettings | None = None
    teacher_grade_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description=(
            "pool column with the teacher's grade (Yes/No): rows graded wrong are never auto-included; default: the "
            "first of grade, deepseek_grade, gemini_grade, teacher_correct present"
        ),
    )
    judge: str | None = Field(
        default=None,
        pattern=r"^https?://\S+@[^@\s]+$",
        max_length=2048,
        description=("URL@MODEL of a chat model that classifies MSC domains"),
    )
    grade_with_judge: bool = Field(default=False, description="also grade base-model answers with the judge")
    answer_kinds: dict[str, AnswerKind] = Field(
        default_factory=dict, max_length=64, description=("per pool: how answers compare")
    )
    max_tokens: int = Field(default=1024, ge=1, le=1_048_576, description="completion cap of each base-model call")
    temperature: float = Field(default=0.0, ge=0, le=2, description="sampling temperature of base-model calls")
    concurrency: int = Field(default=8, ge=1, le=1024, description="model calls in flight")
    domain_column: str | None = Field(
        default=None, min_length=1, description=("take domains from this column: no judge calls")
    )
    domain_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description=("re-asks when the judge's reply holds no MSC code; then the domain is 'unknown'"),
    )
    tokenizer: str | None = Field(
        default=None,
        min_length=1,
        description=("tokenizer counting trace length: 'tiny', a folder or hf://id (default: whitespace words)"),
    )
    auto_include: list[AutoIncludeRule] = Field(
        default_factory=lambda: list(S1_AUTO_INCLUDE),
        max_length=32,
        description="rows selected before the random draw (s1's defaults)",
    )
    target_size: int = Field(default=1000, ge=1, le=1_000_000, description="how many questions to select (s1K: 1000)")
    seed: int = Field(default=0, ge=0, description="seed of the selection draw, so a selection can be reproduced")
    allow_smaller: bool = Field(default=False, description="keep every remaining row when fewer than targetSize remain")

    @field_validator("extra_rules")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"extra_rules[{name!r}]: invalid regex {pattern!r} ({e})") from None
        return v


class CurateConfig(CurateSettings):
    """A whole `thinkube curate` run: the settings, the output folder and how calls are made."""

    out: str = Field(min_length=1, description="output folder (path or pvc://); rerunning with the same folder resumes")
    teacher: TeacherConfig | None = None  # None: the pools carry their traces; distill stage skipped
    max_retries: int = Field(default=5, ge=0, le=100, description="retries per call on connection errors and 429/5xx")
    backoff_s: float = Field(default=0.5, ge=0)
    request_timeout_s: float = Field(default=600.0, gt=0)
    grade_workers: int = Field(
        default=0, ge=0, description=("processes for offline grading (math-verify); 0: in this process")
    )

    @model_validator(mode="after")
    def _consistent(self) -> CurateConfig:
        models = [self.base_model(i).model for i in range(len(self.base_models))]
        if len(set(models)) != len(models):
            # The call cache is keyed by model name, so two endpoints must not share one.
            raise ValueError(f"base models must have distinct model names, got {models}")
        if self.judge is not None:
            Endpoint.parse(self.judge, "--judge")
        return self

    def base_model(self, i: int) -> Endpoint:
        return Endpoint.parse(self.base_models[i], "--base-model")

    def judge_endpoint(self) -> Endpoint | None:
        return Endpoint.parse(self.judge, "--judge") if self.judge else None
