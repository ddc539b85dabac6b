"""CurationJob: select an s1K-style dataset from question pools (`thinkube curate`).

The spec embeds `CurateSettings` (thinkube.api.stages.curate), the same model `thinkube curate`
reads, so the operator builds the stage's config by instantiating `CurateConfig` from it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from thinkube.api.model import Model, Rule
from thinkube.api.resources.common import ArtifactURI, CustomResource, JobSpec, Names, ObjectName, PrinterColumn, Status
from thinkube.api.stages.curate import CurateSettings, TeacherSettings

# An OpenAI-compatible server and the model to ask it for (http://host:port@Model-Name), or
# the name of a BudgetForcedServer in the same namespace (its endpoint and served model).
EndpointOrServer = Annotated[
    str, Field(pattern=r"^(https?://\S+@[^@\s]+|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=2048)
]


class SecretKeyRef(Model):
    """One key of a Secret in the resource's namespace."""

    name: ObjectName = Field(description="the Secret's name")
    key: str = Field(
        default="api-key",
        pattern=r"^[-._a-zA-Z0-9]+$",
        max_length=253,
        description=("the key inside the Secret whose value is used"),
    )


class TeacherSpec(TeacherSettings):
    """The teacher model that writes each question's reasoning trace and attempt (s1: Gemini Flash
    Thinking; s1K-1.1: DeepSeek-R1), called over an OpenAI-compatible API."""

    rules = (
        Rule(
            "!has(self.apiKeySecret) || self.endpoint.contains('://')",
            "apiKeySecret is only for a URL@MODEL endpoint: a BudgetForcedServer named in endpoint runs in the cluster "
            "and needs no API key",
            field_path=".apiKeySecret",
            check=lambda t: t.api_key_secret is None or "://" in t.endpoint,
        ),
    )
    endpoint: EndpointOrServer = Field(
        description=(
            "URL@MODEL of an OpenAI-compatible API, or the name of a BudgetForcedServer in this namespace serving a large "
            "model (the job waits until it is Ready)"
        )
    )
    api_key_secret: SecretKeyRef | None = Field(
        default=None,
        description=(
            "the Secret key holding the API key of a URL@MODEL endpoint (key defaults to api-key); the pod gets it as "
            "an environment variable, never as an argument, and the operator never reads it"
        ),
    )


class CurationJobSpec(JobSpec, CurateSettings):
    """The curation settings (thinkube.api.stages.curate), where inputs are URIs a pod can read and
    endpoints may name a BudgetForcedServer, plus the Job's own fields."""

    rules = JobSpec.rules + CurateSettings.rules
    pools: dict[str, ArtifactURI] = Field(
        min_length=1,
        max_length=64,
        description=("question pools by name: JSONL, Parquet, a saved dataset folder or hf://"),
    )
    decontaminate: dict[str, ArtifactURI] = Field(
        default_factory=dict,
        max_length=64,
        description=("benchmarks by name whose questions must not leak into the selection (n-gram overlap)"),
    )
    base_models: list[EndpointOrServer] = Field(
        default_factory=list,
        max_length=8,
        description=(
            "base models, each URL@MODEL or the name of a BudgetForcedServer in this namespace (the job waits until "
            "it is Ready); questions any of them solves are dropped (s1: Qwen2.5-7B and -32B Instruct); "
            "none: the difficulty filter is skipped"
        ),
    )
    teacher: TeacherSpec | None = Field(
        default=None,
        description=("distillation: a teacher model writes the reasoning traces; unset: the pools carry their traces"),
    )
    max_retries: int = Field(default=1, ge=0, le=20, description="pod retries before the run fails (Job backoffLimit)")


class CurationJobStatus(Status):
    base_models: list[str] = Field(
        default_factory=list,
        max_length=8,
        description=("the base models as URL@MODEL, BudgetForcedServer names resolved"),
    )
    teacher: str | None = Field(
        default=None,
        max_length=2048,
        description=("the teacher as URL@MODEL, a BudgetForcedServer name resolved (its API key is never shown)"),
    )


class CurationJob(CustomResource):
    """Select an s1K-style dataset from question pools: a Job running `thinkube curate`."""

    names = Names(
        kind="CurationJob",
        plural="curationjobs",
        short="cj",
        max_name_length=48,
        columns=(
            PrinterColumn("Size", ".spec.targetSize", "integer"),
            PrinterColumn("Output", ".status.outputUri", priority=1),
        ),
    )
    spec: CurationJobSpec
    status: CurationJobStatus = Field(default_factory=CurationJobStatus)
