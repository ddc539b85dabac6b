"""What every Thinkube resource shares: the base model, CEL rules, scheduling fields, status.

One definition serves three readers: the operator and the control plane validate with these
pydantic models, and `thinkube.api.crdgen` turns them into the CRDs' OpenAPI schemas. A
cross-field check is therefore written once as a `Rule` that carries both its CEL text (for
the API server) and the same check in Python (for pydantic).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from thinkube.api.model import Model, Rule
from thinkube.constants import API_VERSION

# The artifact URI schemes of thinkube.workloads.uris, as a pattern the API server checks.
URI_PATTERN = (
    r"^(pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/.*)?"
    r"|file:///?.+|hf://[^/@\s]+/[^/@\s]+(@\S+)?|s3://[^/\s]+(/.*)?)$"
)
ArtifactURI = Annotated[
    str,
    Field(
        pattern=URI_PATTERN,
        max_length=1024,
        description=(
            "artifact URI: pvc://<claim>/<path>, file://<path>, hf://<org>/<name>[@revision] or s3://<bucket>/<key>"
        ),
    ),
]
# A model is an artifact or `tiny`, the built-in tiny model (thinkube.workloads.models.TINY).
ModelURI = Annotated[
    str,
    Field(
        pattern=f"^tiny$|{URI_PATTERN}",
        max_length=1024,
        description=(
            "model URI: pvc://<claim>/<path>, file://<path>, hf://<org>/<name>[@revision], s3://... or `tiny`"
        ),
    ),
]
# Names of other objects in the same namespace (RFC 1123 subdomain, as Kubernetes checks).
ObjectName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
# Kubernetes resource quantity: what `resources.limits` take ("8", 8, "64Gi", "500m").
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
GPU_RESOURCE = "nvidia.com/gpu"


# ---------------------------------------------------------------- spec pieces


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class ResourceRequirements(Model):
    """Container resources; GPU counts come from the kind's own GPU fields and are added here."""

    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)


class WorkloadSpec(Model):
    """Fields every resource has: scheduling, image, suspension, Kueue queue."""

    suspend: bool = Field(
        default=False, description=("stop the workload (Jobs suspended, servers scaled to 0) until set back to false")
    )
    image: str | None = Field(default=None, min_length=1, description="workload image; default: the operator's --image")
    resources: ResourceRequirements | None = Field(default=None, description="container resources (cpu, memory, ...)")
    node_selector: dict[str, str] = Field(default_factory=dict, description="default: the operator's --node-selector")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="default: the operator's --toleration"
    )
    queue_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=63,
        description=(
            "Kueue LocalQueue: sets the kueue.x-k8s.io/queue-name label; Kueue then decides when the workload starts"
        ),
    )


class JobSpec(WorkloadSpec):
    """Fields of the kinds that run to completion and leave a result."""

    # Declared again so that the kinds may extend it (`JobSpec.rules + (...)`).
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "!has(self.outputUri) || self.outputUri.startsWith('pvc://') || self.outputUri.startsWith('file://')",
            "outputUri must be pvc://<claim>/<path> or file://<path>: stages write to a mounted volume",
            field_path=".outputUri",
            check=lambda s: s.output_uri is None or s.output_uri.startswith(("pvc://", "file://")),
        ),
    )
    output_uri: ArtifactURI | None = Field(
        default=None,
        description=(
            "where the stage writes its result; default pvc://<operator --artifacts-pvc>/<plural>/<namespace>/<name>"
        ),
    )
    active_deadline_seconds: int | None = Field(default=None, ge=1, description="fail the run after this many seconds")


# ---------------------------------------------------------------- status


class Phase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    READY = "Ready"  # servers only


class Condition(Model):
    """The Kubernetes metav1.Condition shape."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: datetime
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=32768)


class Status(Model):
    phase: Phase | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = None
    message: str | None = Field(default=None, description="human-readable summary of the phase")
    input_uri: str | None = Field(
        default=None, description=("the dataset, model or endpoint this resource uses, once resolved")
    )
    output_uri: str | None = Field(default=None, description="where the result is (set when the stage runs)")


# ---------------------------------------------------------------- the resource envelope


class ObjectMeta(BaseModel):
    """Only what the operator reads; the API server owns the rest."""

    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0  # 1: only with `kubectl get -o wide`
    description: str = ""


@dataclass(frozen=True)
class Names:
    """The CRD naming block and how the kind shows in `kubectl get`."""

    kind: str
    plural: str
    short: str
    columns: tuple[PrinterColumn, ...]
    max_name_length: int  # child names (Job pod hostnames, Services) derive from metadata.name
    scale: bool = False  # scale subresource (spec.replicas / status.replicas / status.selector)


class CustomResource(BaseModel):
    """A whole object as the API server stores it; subclasses fix `spec` and `status` types."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    names: ClassVar[Names]
    # CEL rules on the whole object (crdgen puts them at the schema root), where a transition
    # rule can see the stored status as well as the spec; CEL only, there is no old object here.
    transition_rules: ClassVar[tuple[dict, ...]] = ()
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    spec: WorkloadSpec
