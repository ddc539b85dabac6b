"""CurationJob: select an s1K-style dataset from question pools (`thinkube curate`).

The field names are CurateConfig's own (thinkube.workloads.curation.config), so the
operator hands the spec to the workload unchanged.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from thinkube.api.resources.common import ArtifactURI, CustomResource, JobSpec, Names, PrinterColumn, Rule, Status

# An OpenAI-compatible server and the model to ask it for: http://host:port@Model-Name
Endpoint = Annotated[str, Field(pattern=r"^https?://\S+@[^@\s]+$", max_length=2048)]
# ... or the name of a BudgetForcedServer in the same namespace (its endpoint and served model).
EndpointOrServer = Annotated[str, Field(pattern=r"^(https?://\S+@[^@\s]+|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
                                        max_length=2048)]


class CurationJobSpec(JobSpec):
    # Spec fields that are the curation stage's own config keys (the rest are Kubernetes').
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({
        "pools", "column_maps", "decontaminate", "base_models", "judge", "grade_with_judge", "answer_kinds",
        "domain_column", "tokenizer", "target_size", "seed", "allow_smaller", "concurrency", "max_tokens", "ngram"})
    rules = JobSpec.rules + (
        Rule("has(self.judge) || has(self.domainColumn)",
             "set judge (URL@MODEL, classifies questions into MSC domains) or domainColumn (domains given in the pool)",
             field_path=".judge", check=lambda s: s.judge is not None or s.domain_column is not None),
        Rule("!self.gradeWithJudge || has(self.judge)", "gradeWithJudge needs judge (URL@MODEL)",
             field_path=".gradeWithJudge", check=lambda s: not s.grade_with_judge or s.judge is not None),
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
