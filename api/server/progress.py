"""Trainers report their progress here; the control plane writes it to SFTRun status.progress.

A trainer authenticates with its pod's projected ServiceAccount token bound to the control
plane's audience (a token for the Kubernetes API itself is refused, and this token is good
for nothing else). TokenReview names the pod the token was issued for; the report is taken
only if that pod is one of this run's pods, so a pod cannot write another run's progress.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from thinkube.api.resources.sft import TrainingProgress
from thinkube.api.server.auth import POD_NAME_KEY, POD_UID_KEY
from thinkube.api.server.deps import Name, Namespace, header_token, state
from thinkube.api.server.problems import Problem, unauthorized
from thinkube.api.server.resources import resource_path
from thinkube.operator.kinds.common import labels

router = APIRouter(tags=["SFTRun"])


@router.post(
    "/v1/namespaces/{namespace}/sftruns/{name}/progress",
    status_code=204,
    summary="Report training progress (trainer pods only, with a projected token for the control plane's audience)",
    response_class=Response,
)
async def report(namespace: Namespace, name: Name, body: TrainingProgress, request: Request) -> Response:
    st = state(request)
    token = header_token(request)  # never the dashboard's cookie: only pods report
    if not token:
        raise unauthorized("send the pod's projected ServiceAccount token: Authorization: Bearer <token>")
    who = await st.reviewer.authenticate(token, audiences=(st.settings.audience,))
    account, pod_name, pod_uid = who.service_account, who.one(POD_NAME_KEY), who.one(POD_UID_KEY)
    if account is None or account[0] != namespace or not pod_name:
        raise Problem(403, "forbidden", f"only pods of sftrun {name} in namespace {namespace} report its progress")
    key = ("pod-of-run", namespace, name, pod_name, pod_uid)
    belongs = st.reviewer.cache.get(key)
    if belongs is None:
        try:
            pod = await st.kube.call("GET", f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
        except Problem as e:
            if e.status != 404:
                raise
            pod = {}
        meta = pod.get("metadata") or {}
        belongs = labels("SFTRun", name).items() <= (meta.get("labels") or {}).items() and (
            not pod_uid or meta.get("uid") == pod_uid
        )
        st.reviewer.cache.put(key, belongs)
    if not belongs:
        raise Problem(403, "forbidden", f"only pods of sftrun {name} in namespace {namespace} report its progress")
    await st.kube.call(
        "PATCH",
        resource_path(namespace, "sftruns", name) + "/status",
        {"status": {"progress": body.model_dump(by_alias=True, exclude_none=True, mode="json")}},
        content_type="application/merge-patch+json",
    )
    return Response(status_code=204)
