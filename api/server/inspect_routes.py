"""A run's events, its pods' logs and its results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from thinkube.api.server import results
from thinkube.api.server.deps import CallerDep, Name, Namespace, allow, state
from thinkube.api.server.problems import Problem
from thinkube.api.server.resources import plural_kind, resource_path
from thinkube.constants import ANNOTATION_JOB_COMPLETION_INDEX, LABEL_JOB_NAME
from thinkube.operator.kinds.common import selector

MAX_TAIL = 10_000
FOLLOW_QUEUE = 1024

router = APIRouter(tags=["inspect"])


def _kind(plural: str) -> str:
    return plural_kind(plural).names.kind


async def _resource(request: Request, namespace: str, plural: str, name: str) -> dict:
    return await state(request).kube.call("GET", resource_path(namespace, plural, name))


@router.get("/v1/namespaces/{namespace}/{plural}/{name}/events", summary="Events of a run, newest last")
async def events(namespace: Namespace, plural: str, name: Name, request: Request, who: CallerDep) -> dict:
    kind = _kind(plural)
    await allow(request, who, "get", plural, namespace, name=name)
    await allow(request, who, "list", "events", namespace, group="")
    found = await state(request).kube.call(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        params={"fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"},
    )
    items = [
        {
            "type": e.get("type"),
            "reason": e.get("reason"),
            "message": e.get("message"),
            "count": e.get("count") or 1,
            "firstTimestamp": e.get("firstTimestamp") or e.get("eventTime"),
            "lastTimestamp": e.get("lastTimestamp") or e.get("eventTime"),
        }
        for e in found.get("items", [])
    ]
    items.sort(key=lambda e: e["lastTimestamp"] or "")
    return {"items": items}


def _rank(pod: dict) -> int:
    meta = pod.get("metadata") or {}
    value = (meta.get("labels") or {}).get(ANNOTATION_JOB_COMPLETION_INDEX) or (meta.get("annotations") or {}).get(
        ANNOTATION_JOB_COMPLETION_INDEX
    )
    return int(value) if value and value.isdigit() else 0


async def _pods(request: Request, namespace: str, kind: str, name: str, obj: dict, rank: int | None) -> list[dict]:
    found = await state(request).kube.call(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        params={"labelSelector": selector(kind, name)},
    )
    pods = found.get("items", [])
    job = (obj.get("status") or {}).get("jobName")
    if kind == "SFTRun" and job:  # the current attempt's gang, not pods of restarted ones
        pods = [p for p in pods if (p["metadata"].get("labels") or {}).get(LABEL_JOB_NAME) == job] or pods
    if rank is not None:
        pods = [p for p in pods if _rank(p) == rank]
    return sorted(pods, key=lambda p: (_rank(p), p["metadata"]["name"]))


@router.get(
    "/v1/namespaces/{namespace}/{plural}/{name}/logs",
    summary="Logs of a run's pods (text; streamed with follow)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
async def logs(
    namespace: Namespace,
    plural: str,
    name: Name,
    request: Request,
    who: CallerDep,
    follow: bool = False,
    tail: Annotated[int | None, Query(ge=0, le=MAX_TAIL, description="last lines per pod")] = None,
    rank: Annotated[int | None, Query(ge=0, le=4096, description="SFTRun: only this node's pod")] = None,
    container: Annotated[str | None, Query(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = None,
):
    kind = _kind(plural)
    await allow(request, who, "get", plural, namespace, name=name)
    await allow(request, who, "get", "pods", namespace, group="", subresource="log")
    obj = await _resource(request, namespace, plural, name)
    pods = await _pods(request, namespace, kind, name, obj, rank)
    if not pods:
        raise Problem(
            404, "no-pods", f"{kind} {name} has no pods{' of rank %d' % rank if rank is not None else ''} yet"
        )
    kube = state(request).kube
    params = {"tailLines": str(tail) if tail is not None else None, "container": container}
    prefix = len(pods) > 1

    def label(pod: dict) -> str:
        return f"[{pod['metadata']['name']}] " if prefix else ""

    def path(pod: dict) -> str:
        return f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/log"

    if not follow:
        texts = await asyncio.gather(*(kube.text(path(p), params) for p in pods))
        body = "".join("".join(f"{label(p)}{line}\n" for line in text.splitlines()) for p, text in zip(pods, texts))
        return Response(body, media_type="text/plain; charset=utf-8")

    async def merged() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(FOLLOW_QUEUE)

        async def pump(pod: dict) -> None:
            try:
                async for line in kube.stream_lines(path(pod), {**params, "follow": "true"}):
                    await queue.put(f"{label(pod)}{line}\n")
            except Problem as e:
                await queue.put(f"{label(pod)}[logs ended: {e.detail}]\n")
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(p)) for p in pods]
        try:
            open_streams = len(tasks)
            while open_streams:
                item = await queue.get()
                if item is None:
                    open_streams -= 1
                    continue
                yield item.encode()
        finally:
            for t in tasks:
                t.cancel()

    return StreamingResponse(merged(), media_type="text/plain; charset=utf-8")


def _folder(request: Request, obj: dict, kind: str, name: str) -> Path:
    """The run's output folder on the mounted artifacts PVC.

    Only pvc:// outputs are read, and only inside the PVC root: a file:// output or a path
    with `..` would let a user who may create runs read the control plane's own disk. A claim
    name means the PVC of the run's namespace, so a control plane that knows its namespace
    reads results of runs there only, where its mounted claims are the same PVCs.
    """
    uri = (obj.get("status") or {}).get("outputUri")
    if not uri:
        what = "serves and leaves no results" if kind == "BudgetForcedServer" else "has not started writing results"
        raise Problem(404, "no-results", f"{kind} {name} {what}")
    settings = state(request).settings
    if not uri.startswith("pvc://"):
        raise Problem(
            404, "no-results", f"{kind} {name}: results at {uri} are not on a PVC; the API reads pvc:// outputs"
        )
    namespace = obj["metadata"]["namespace"]
    if settings.namespace and namespace != settings.namespace:
        raise Problem(
            404,
            "no-results",
            f"{kind} {name}: its PVC belongs to namespace {namespace}; this control plane mounts the artifacts "
            f"PVC of namespace {settings.namespace} only",
        )
    root = settings.pvc_root.resolve()
    folder = (root / uri[len("pvc://") :]).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        raise Problem(404, "no-results", f"{kind} {name}: nothing at {uri} yet (is its PVC mounted here?)")
    return folder


@router.get("/v1/namespaces/{namespace}/{plural}/{name}/results", summary="A run's summary and result files")
async def results_index(namespace: Namespace, plural: str, name: Name, request: Request, who: CallerDep) -> dict:
    kind = _kind(plural)
    await allow(request, who, "get", plural, namespace, name=name)
    obj = await _resource(request, namespace, plural, name)
    folder = _folder(request, obj, kind, name)
    summary, listed = await asyncio.to_thread(results.index, kind, folder)
    base = f"/v1/namespaces/{namespace}/{plural}/{name}/results"
    return {
        "kind": kind,
        "name": name,
        "phase": (obj.get("status") or {}).get("phase"),
        "outputUri": (obj.get("status") or {}).get("outputUri"),
        "summary": summary,
        "files": [
            {"name": n, "mediaType": results.media_type(n), "size": size, "url": f"{base}/{n}"} for n, size in listed
        ],
    }


@router.get(
    "/v1/namespaces/{namespace}/{plural}/{name}/results/{file:path}",
    summary="One result file (report, table, plot)",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def result_file(namespace: Namespace, plural: str, name: Name, file: str, request: Request, who: CallerDep):
    kind = _kind(plural)
    await allow(request, who, "get", plural, namespace, name=name)
    obj = await _resource(request, namespace, plural, name)
    folder = _folder(request, obj, kind, name)
    if kind == "SFTRun" and file == results.LOSS_PNG:
        png = await asyncio.to_thread(results.loss_curve_png, folder)
        if png is None:
            raise Problem(404, "no-results", f"{kind} {name} has no training steps yet", "file")
        return Response(png, media_type="image/png")
    return FileResponse(results.resolve(folder, file), media_type=results.media_type(file))
