"""Create, list, get, patch and delete the four kinds, under /v1/namespaces/{ns}/{plural}.

Request bodies are the same pydantic models that generate the CRDs, so a bad field is
refused here with its name, /openapi.json documents every field with its default, and what
reaches the API server is checked again there (CEL rules included). Routes are made per kind
so each documents its own body. Answers are the API server's JSON, returned as it is (a
JSONResponse skips FastAPI's re-encoding, which costs more than the call on long lists).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from thinkube.api.model import Model
from thinkube.api.resources import KINDS
from thinkube.api.resources.common import CustomResource
from thinkube.api.server.deps import DNS_SUBDOMAIN, CallerDep, Name, Namespace, allow, state
from thinkube.api.server.problems import Problem
from thinkube.constants import API_VERSION

DryRun = Annotated[
    Literal["All"] | None, Query(alias="dryRun", description="All: validate and admit, but store nothing")
]
PATCHABLE = {"spec", "metadata"}
PATCHABLE_METADATA = {"labels", "annotations"}
MERGE_PATCH = "application/merge-patch+json"


class CreateMeta(Model):
    """What a caller may set in metadata; the API server fills in the rest."""

    name: str | None = Field(default=None, pattern=DNS_SUBDOMAIN, max_length=253)
    generate_name: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*)?$", max_length=200)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _named(self):
        if not self.name and not self.generate_name:
            raise ValueError("give metadata.name (or metadata.generateName)")
        return self


def create_body(kind: type[CustomResource]) -> type[BaseModel]:
    spec = kind.model_fields["spec"].annotation
    fields: dict[str, Any] = {
        "api_version": (Literal[API_VERSION], Field(default=API_VERSION, alias="apiVersion")),
        "kind": (Literal[kind.names.kind], Field(default=kind.names.kind)),
        "metadata": (CreateMeta, ...),
        "spec": (spec, ...),
    }
    return create_model(
        f"{kind.names.kind}Create",
        __config__=ConfigDict(extra="forbid", populate_by_name=True),
        __doc__=kind.__doc__,
        **fields,
    )


def _check_name(kind: type[CustomResource], name: str | None) -> None:
    limit = kind.names.max_name_length
    if name and len(name) > limit:
        raise Problem(
            422, "invalid-field", f"metadata.name: at most {limit} characters for a {kind.names.kind}", "metadata.name"
        )


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _check_patch(kind: type[CustomResource], current: dict, patch: dict) -> None:
    """Only spec, labels and annotations change through the API; the patched spec must validate."""
    extra = set(patch) - PATCHABLE
    if extra:
        field = sorted(extra)[0]
        raise Problem(422, "invalid-field", f"{field}: only spec, metadata.labels and metadata.annotations", field)
    meta = patch.get("metadata") or {}
    if not isinstance(meta, dict) or set(meta) - PATCHABLE_METADATA:
        raise Problem(422, "invalid-field", "metadata: only labels and annotations can be patched", "metadata")
    if "spec" in patch:
        spec_model = kind.model_fields["spec"].annotation
        assert spec_model is not None
        try:
            spec_model.model_validate(_merge(current.get("spec") or {}, patch["spec"]))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(["spec", *(str(p) for p in first["loc"])])
            raise Problem(422, "invalid-field", f"{field}: {first['msg'].removeprefix('Value error, ')}", field)


def resource_path(namespace: str, plural: str, name: str | None = None) -> str:
    """The Kubernetes API path of a kind's collection in a namespace, or of one object."""
    out = f"/apis/{API_VERSION}/namespaces/{namespace}/{plural}"
    return f"{out}/{name}" if name else out


def add_kind(router: APIRouter, kind: type[CustomResource]) -> None:
    plural, kind_name = kind.names.plural, kind.names.kind
    tags: list[str | Enum] = [kind_name]

    async def create(namespace: Namespace, body: BaseModel, request: Request, who: CallerDep, dry_run: DryRun = None):
        await allow(request, who, "create", plural, namespace)
        obj = body.model_dump(by_alias=True, exclude_unset=True, mode="json")
        meta = obj["metadata"]
        if meta.get("namespace") not in (None, namespace):
            raise Problem(
                422, "invalid-field", "metadata.namespace: differs from the namespace in the path", "metadata.namespace"
            )
        _check_name(kind, meta.get("name"))
        obj.update(apiVersion=API_VERSION, kind=kind_name, metadata={**meta, "namespace": namespace})
        out = await state(request).kube.call("POST", resource_path(namespace, plural), obj, {"dryRun": dry_run})
        return JSONResponse(out, 201)

    create.__annotations__["body"] = create_body(kind)  # the kind's own model, so /openapi.json documents it
    router.add_api_route(
        f"/v1/namespaces/{{namespace}}/{plural}",
        create,
        methods=["POST"],
        status_code=201,
        tags=tags,
        summary=f"Create a {kind_name}",
        name=f"create_{plural}",
    )

    @router.get(
        f"/v1/namespaces/{{namespace}}/{plural}", tags=tags, summary=f"List {kind_name}s", name=f"list_{plural}"
    )
    async def list_(
        namespace: Namespace,
        request: Request,
        who: CallerDep,
        label_selector: Annotated[str | None, Query(alias="labelSelector", max_length=1024)] = None,
        limit: Annotated[int | None, Query(ge=1, le=1000, description="page size; follow metadata.continue")] = None,
        continue_: Annotated[str | None, Query(alias="continue", max_length=4096)] = None,
    ):
        await allow(request, who, "list", plural, namespace)
        params = {"labelSelector": label_selector, "limit": str(limit) if limit else None, "continue": continue_}
        return JSONResponse(await state(request).kube.call("GET", resource_path(namespace, plural), params=params))

    @router.get(
        f"/v1/namespaces/{{namespace}}/{plural}/{{name}}", tags=tags, summary=f"Get a {kind_name}", name=f"get_{plural}"
    )
    async def get(namespace: Namespace, name: Name, request: Request, who: CallerDep):
        await allow(request, who, "get", plural, namespace, name=name)
        return JSONResponse(await state(request).kube.call("GET", resource_path(namespace, plural, name)))

    @router.patch(
        f"/v1/namespaces/{{namespace}}/{plural}/{{name}}",
        tags=tags,
        summary=f"Change a {kind_name} (JSON merge patch of spec, labels, annotations), e.g. suspend it",
        name=f"patch_{plural}",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    MERGE_PATCH: {"schema": {"type": "object"}, "example": {"spec": {"suspend": True}}},
                    "application/json": {"schema": {"type": "object"}},
                },
            }
        },
    )
    async def patch(namespace: Namespace, name: Name, request: Request, who: CallerDep, dry_run: DryRun = None):
        await allow(request, who, "patch", plural, namespace, name=name)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise Problem(400, "invalid-json", "the request body is not a JSON merge patch")
        if not isinstance(body, dict):
            raise Problem(400, "invalid-json", 'a merge patch is a JSON object, e.g. {"spec": {"suspend": true}}')
        kube = state(request).kube
        current = await kube.call("GET", resource_path(namespace, plural, name))
        _check_patch(kind, current, body)
        patched = await kube.call(
            "PATCH", resource_path(namespace, plural, name), body, {"dryRun": dry_run}, content_type=MERGE_PATCH
        )
        return JSONResponse(patched)

    @router.delete(
        f"/v1/namespaces/{{namespace}}/{plural}/{{name}}",
        tags=tags,
        summary=f"Delete a {kind_name}",
        name=f"delete_{plural}",
    )
    async def delete(namespace: Namespace, name: Name, request: Request, who: CallerDep, dry_run: DryRun = None):
        await allow(request, who, "delete", plural, namespace, name=name)
        return JSONResponse(
            await state(request).kube.call("DELETE", resource_path(namespace, plural, name), params={"dryRun": dry_run})
        )


def router() -> APIRouter:
    out = APIRouter()
    for kind in KINDS:
        add_kind(out, kind)
    return out


def plural_kind(plural: str) -> type[CustomResource]:
    for kind in KINDS:
        if kind.names.plural == plural:
            return kind
    raise Problem(
        404, "not-found", f"no kind {plural!r}: use one of {', '.join(k.names.plural for k in KINDS)}", "plural"
    )
