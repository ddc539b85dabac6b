"""CurationJob: select an s1K-style dataset from question pools (`thinkube curate`).

The field names are CurateConfig's own (thinkube.workloads.curation.config), so the
operator hands the spec to the workload unchanged; `teacher` is the exception (its endpoint
may name a server, its API key comes from a Secret), built into TeacherConfig by the operator.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from thinkube.api.resources.common import (ArtifactURI, CustomResource, JobSpec, Model, Names, ObjectName,
                                           PrinterColumn, Rule, Status)

# An OpenAI-compatible server and the model to ask it for: http://host:port@Model-Name
Endpoint = Annotated[str, Field(pattern=r"^https?://\S+@[^@\s]+$", max_length=2048)]
# ... or the name of a BudgetForcedServer in the same namespace (its endpoint and served model).
EndpointOrServer = Annotated[str, Field(pattern=r"^(https?://\S+@[^@\s]+|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
                                        max_length=2048)]


class SecretKeyRef(Model):
    """One key of a Secret in the resource's namespace."""

    name: ObjectName = Field(description="the Secret's name")
    key: str = Field("api-key", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description=(
        "the key inside the Secret whose value is used"))


class TeacherSpec(Model):
    """The teacher model that writes each question's reasoning trace and attempt (s1: Gemini Flash
    Thinking; s1K-1.1: DeepSeek-R1), called over an OpenAI-compatible API."""

    rules = (Rule(
        "!has(self.apiKeySecret) || self.endpoint.contains('://')",
        "apiKeySecret is only for a URL@MODEL endpoint: a BudgetForcedServer named in endpoint runs in the cluster "
        "and needs no API key", field_path=".apiKeySecret",
        check=lambda t: t.api_key_secret is None or "://" in t.endpoint,
    ),)
    endpoint: EndpointOrServer = Field(description=(
        "URL@MODEL of an OpenAI-compatible API, or the name of a BudgetForcedServer in this namespace serving a large "
        "model (the job waits until it is Ready)"))
    api_key_secret: SecretKeyRef | None = Field(None, description=(
        "the Secret key holding the API key of a URL@MODEL endpoint (key defaults to api-key); the pod gets it as "
        "an environment variable, never as an argument, and the operator never reads it"))
    regenerate: bool = Field(False, description=(
        "true: ask the teacher for every question, replacing traces the pools carry (as s1K-1.1 did); "
        "false: only questions without a trace"))
    max_tokens: int = Field(32768, ge=1, le=1_048_576, description=(
        "completion cap of each teacher call (s1K-1.1's traces reach ~26K tokens)"))
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature of the teacher calls")
    concurrency: int = Field(8, ge=1, le=1024, description="teacher calls in flight")
    requests_per_minute: float | None = Field(None, gt=0, le=1_000_000, description=(
        "rate limit on teacher calls (a hosted API's quota); unset: no limit"))
    tokens_per_minute: float | None = Field(None, gt=0, le=1_000_000_000, description=(
        "rate limit on teacher tokens (a hosted API's quota); unset: no limit"))
    timeout_seconds: int = Field(1800, ge=1, le=86_400, description=(
        "how long one teacher call may take (a long trace takes minutes)"))
    max_total_tokens: int | None = Field(None, ge=1, le=10**12, description=(
        "tokens (prompt and completion) the job may spend on teacher calls in all; rows left when it is spent "
        "fail with that reason, and rerunning with a larger budget goes on from the cache; unset: no cap"))
    grade_with_judge: bool = Field(False, description=(
        "grade the teacher's attempts with the judge instead of the offline grader; needs spec.judge"))


class CurationJobSpec(JobSpec):
    # Spec fields that are the curation stage's own config keys (the rest are Kubernetes').
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({
        "pools", "column_maps", "decontaminate", "base_models", "judge", "grade_with_judge", "answer_kinds",
        "domain_column", "tokenizer", "target_size", "seed", "allow_smaller", "concurrency", "max_tokens", "ngram",
        "teacher_grade_column"})
    rules = JobSpec.rules + (
        Rule("has(self.judge) || has(self.domainColumn)",
             "set judge (URL@MODEL, classifies questions into MSC domains) or domainColumn (domains given in the pool)",
             field_path=".judge", check=lambda s: s.judge is not None or s.domain_column is not None),
        Rule("!self.gradeWithJudge || has(self.judge)", "gradeWithJudge needs judge (URL@MODEL)",
             field_path=".gradeWithJudge", check=lambda s: not s.grade_with_judge or s.judge is not None),
        Rule("!has(self.teacher) || !self.teacher.gradeWithJudge || has(self.judge)",
             "the teacher's gradeWithJudge needs judge (URL@MODEL), the model that grades its attempts",
             field_path=".teacher.gradeWithJudge",
             check=lambda s: s.teacher is None or not s.teacher.grade_with_judge or s.judge is not None),
    )
    pools: dict[str, ArtifactURI] = Field(min_length=1, max_length=64, description=(
        "question pools by name: JSONL, Parquet, a saved dataset folder or hf://"))
    column_maps: dict[str, dict[str, str]] = Field(default_factory=dict, description=(
        "per pool: record field -> the pool's column name"))
    decontaminate: dict[str, ArtifactURI] = Field(default_factory=dict, description=(
        "benchmarks by name whose questions must not leak into the selection (8-gram overlap)"))
    ngram: int = Field(8, ge=1, le=64, description=(
        "decontamination word n-gram size (s1: 8; templated synthetic questions need longer grams)"))
    base_models: list[EndpointOrServer] = Field(default_factory=list, max_length=8, description=(
        "base models, each URL@MODEL or the name of a BudgetForcedServer in this namespace (the job waits until "
        "it is Ready); questions any of them solves are dropped (s1: Qwen2.5-7B and -32B Instruct); "
        "none: the difficulty filter is skipped"))
    teacher: TeacherSpec | None = Field(None, description=(
        "distillation: a teacher model writes the reasoning traces; unset: the pools carry their traces"))
    teacher_grade_column: str | None = Field(None, min_length=1, max_length=256, description=(
        "pool column with the teacher's grade (Yes/No): rows graded wrong are never auto-included; default: the "
        "first of grade, deepseek_grade, gemini_grade, teacher_correct present"))
    judge: Endpoint | None = Field(None, description="URL@MODEL of a chat model that classifies MSC domains")
    grade_with_judge: bool = Field(False, description="also grade base-model answers with the judge")
    answer_kinds: dict[str, Literal["integer", "math", "choice"]] = Field(default_factory=dict, description=(
        "per pool: how answers compare"))
    domain_column: str | None = Field(None, min_length=1, description="take domains from this column: no judge calls")
    tokenizer: str | None = Field(None, min_length=1, description=(
        "tokenizer counting trace length: 'tiny', a folder or hf://id (default: whitespace words)"))
    target_size: int = Field(1000, ge=1, le=1_000_000, description="how many questions to select (s1K: 1000)")
    seed: int = Field(0, ge=0, description="seed of the selection draw, so a selection can be reproduced")
    allow_smaller: bool = Field(False, description="keep every remaining row when fewer than targetSize remain")
    concurrency: int = Field(8, ge=1, le=1024, description="model calls in flight")
    max_tokens: int = Field(1024, ge=1, le=1_048_576, description="completion cap of each base-model call")
    max_retries: int = Field(1, ge=0, le=20, description="pod retries before the run fails (Job backoffLimit)")


class CurationJobStatus(Status):
    base_models: list[str] = Field(default_factory=list, max_length=8, description=(
        "the base models as URL@MODEL, BudgetForcedServer names resolved"))
    teacher: str | None = Field(None, max_length=2048, description=(
        "the teacher as URL@MODEL, a BudgetForcedServer name resolved (its API key is never shown)"))


class CurationJob(CustomResource):
    """Select an s1K-style dataset from question pools: a Job running `thinkube curate`."""

    names = Names(
        kind="CurationJob", plural="curationjobs", short="cj", max_name_length=48,
        columns=(
            PrinterColumn("Size", ".spec.targetSize", "integer"),
            PrinterColumn("Output", ".status.outputUri", priority=1),
        ),
    )
    spec: CurationJobSpec
    status: CurationJobStatus = Field(default_factory=CurationJobStatus)
