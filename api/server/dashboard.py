"""The web dashboard: server-rendered pages over the same Kubernetes calls and RBAC checks as the REST routes.

Signing in keeps the caller's Kubernetes token in an HttpOnly, SameSite=Strict cookie. Every
page reviews it (TokenReview) and asks RBAC (SubjectAccessReview) before each read, so a user
sees what their own RBAC lets them read and nothing more. The cookie authenticates reads only
(deps.bearer): the dashboard shows, it never changes anything.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import urllib.parse
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from pydantic import ValidationError

from thinkube.api.resources import BY_KIND, KINDS
from thinkube.api.resources.common import CustomResource
from thinkube.api.server import inspect_routes
from thinkube.api.server.auth import Caller
from thinkube.api.server.deps import DNS_LABEL, TOKEN_COOKIE, Name, Namespace, allow, state
from thinkube.api.server.problems import Problem
from thinkube.api.server.resources import plural_kind, resource_path
from thinkube.figures import CURVE_COLUMNS, SETTING_COLUMNS, age, evaluation_tables, flatten, number, step
from thinkube.operator.inputs import Reference, server_references
from thinkube.operator.kinds import KINDS as OPERATED

T = TypeVar("T")

NAMESPACE_COOKIE = "thinkube_namespace"  # only a preference: not a secret, readable by anyone
SESSION_SECONDS = 8 * 3600  # a working day; tokens from `kubectl create token` last 1h by default anyway
MAX_COOKIE_TOKEN = 3800  # browsers drop cookies over about 4 KiB
LIST_LIMIT = 500
LOG_TAIL = 200
MAX_SUMMARY_ROWS = 1000

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)

router = APIRouter(include_in_schema=False)


# ---------------------------------------------------------------- responses


def _headers(nonce: str) -> dict[str, str]:
    # Only this response's inline script and style run: injected markup, were escaping ever
    # missed, could not execute. Framing is refused so the pages cannot be clickjacked.
    csp = (
        "default-src 'self'; "
        f"script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(18)
    html = TEMPLATES.get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status, headers=_headers(nonce))


def _error(who: Caller | None, namespace: str, e: Problem) -> HTMLResponse:
    return _page("error.html", e.status, who=who, namespace=namespace, title=e.body()["title"], detail=e.detail)


def _to_signin() -> Response:
    return RedirectResponse("/signin", 303, headers={"Cache-Control": "no-store"})


async def _attempt(call: Awaitable[T]) -> tuple[T | None, Problem | None]:
    try:
        return await call, None
    except Problem as e:
        return None, e


# ---------------------------------------------------------------- who and where


async def _signed_in(request: Request) -> Caller | Response:
    """The caller of a page, or where to send the browser instead: the sign-in form, or an error page."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return _to_signin()
    try:
        who = await state(request).reviewer.authenticate(token)
    except Problem as e:
        # Expired or revoked: sign in again. Otherwise Kubernetes did not answer: say so.
        return _to_signin() if e.status == 401 else _error(None, "", e)
    request.state.user = who.username  # for the access log
    return who


def _default_namespace(request: Request) -> str:
    return request.cookies.get(NAMESPACE_COOKIE) or state(request).settings.namespace or "default"


def _valid_namespace(namespace: str) -> bool:
    return len(namespace) <= 63 and re.fullmatch(DNS_LABEL, namespace) is not None


def _same_origin(request: Request) -> bool:
    """A form post sent by another site carries its Origin; browsers send one on every POST."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "") != ""


def _cookie_options(request: Request) -> dict[str, Any]:
    return {"path": "/", "samesite": "strict", "secure": state(request).settings.cookie_secure}


# ---------------------------------------------------------------- reading runs


def _run_url(namespace: str, plural: str, name: str) -> str:
    return f"/ui/namespaces/{namespace}/{plural}/{name}"


def _condition(obj: dict, kind: str) -> dict | None:
    """The kind's primary condition: Complete for runs, Ready for servers."""
    primary = OPERATED[kind].primary
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == primary:
            return c
    return None


def _progress(obj: dict) -> dict[str, str]:
    p = (obj.get("status") or {}).get("progress")
    if not (cell := step(p)):
        return {}
    assert isinstance(p, dict)
    return {
        "step": cell,
        "loss": number(p.get("loss")),
        "epoch": number(p.get("epoch")),
        "tokens/s": number(p.get("tokensPerSecond")),
        "eta": f"{int(p['etaSeconds'])}s" if isinstance(p.get("etaSeconds"), (int, float)) else "",
        "updated": str(p.get("updatedAt") or ""),
    }


def _row(obj: dict, kind: str, namespace: str, plural: str, now: datetime) -> dict:
    meta = obj.get("metadata") or {}
    return {
        "name": meta.get("name", ""),
        "href": _run_url(namespace, plural, meta.get("name", "")),
        "phase": (obj.get("status") or {}).get("phase") or "Pending",
        "condition": _condition(obj, kind),
        "age": age(meta.get("creationTimestamp"), now),
        "progress": _progress(obj) if kind == "SFTRun" else {},
    }


@dataclass
class Section:
    kind: str
    plural: str
    condition: str  # the primary condition's type, a column header
    rows: list[dict] = field(default_factory=list)
    refused: str | None = None
    error: str | None = None
    more: bool = False


async def _list(request: Request, who: Caller, plural: str, namespace: str) -> dict:
    await allow(request, who, "list", plural, namespace)
    return await state(request).kube.call("GET", resource_path(namespace, plural), params={"limit": str(LIST_LIMIT)})


async def _section(request: Request, who: Caller, kind: type[CustomResource], namespace: str) -> Section:
    name, plural = kind.names.kind, kind.names.plural
    out = Section(name, plural, OPERATED[name].primary)
    listed, problem = await _attempt(_list(request, who, plural, namespace))
    if problem is not None:
        if problem.status == 403:  # say only what was refused: nothing about what is there
            out.refused = f"not allowed to list {plural} in namespace {namespace}"
        else:
            out.error = problem.detail
        return out
    assert listed is not None
    now = datetime.now(timezone.utc)
    items = sorted(listed.get("items") or [], key=lambda o: o["metadata"].get("creationTimestamp") or "", reverse=True)
    out.rows = [_row(o, name, namespace, plural, now) for o in items]
    out.more = bool((listed.get("metadata") or {}).get("continue"))
    return out


# ---------------------------------------------------------------- the chain


@dataclass
class Link:
    kind: str
    name: str
    href: str
    phase: str | None = None
    note: str = ""  # why it is shown without a phase: missing, not allowed
    current: bool = False
    field: str = ""  # where the reference is written


def _validated(obj: dict) -> CustomResource | None:
    kind = BY_KIND.get(obj.get("kind") or "")
    if kind is None:
        return None
    try:
        return kind.model_validate(obj)
    except ValidationError:
        return None


def _references(obj: dict) -> tuple[Reference | None, list[Reference]]:
    """The stage it reads (the operator's own reading of the spec) and the servers it calls besides."""
    res = _validated(obj)
    if res is None:
        return None, []
    kind = OPERATED[res.names.kind]
    return kind.reference(res), server_references(kind.endpoints(res))


def _link(obj: dict, namespace: str, current: bool = False) -> Link:
    kind, name = obj["kind"], obj["metadata"]["name"]
    phase = (obj.get("status") or {}).get("phase") or "Pending"
    return Link(kind, name, _run_url(namespace, BY_KIND[kind].names.plural, name), phase, current=current)


async def _referenced(request: Request, who: Caller, ref: Reference, namespace: str) -> tuple[dict | None, Link]:
    plural = BY_KIND[ref.kind].names.plural
    link = Link(ref.kind, ref.name, _run_url(namespace, plural, ref.name), field=ref.field)

    async def get() -> dict:
        await allow(request, who, "get", plural, namespace, name=ref.name)
        return await state(request).kube.call("GET", resource_path(namespace, plural, ref.name))

    found, problem = await _attempt(get())
    if problem is not None:
        link.note = {403: "not allowed to read it", 404: "not found"}.get(problem.status, problem.detail)
        return None, link
    assert found is not None
    link.phase = (found.get("status") or {}).get("phase") or "Pending"
    return found, link


async def _chain(request: Request, who: Caller, obj: dict) -> tuple[list[dict], list[Link]]:
    """Stages in pipeline order, each with the chain's resources of that kind; and other servers it calls.

    Upstream follows the spec's references; downstream lists the later kinds in the namespace
    and keeps those that read a resource already in the chain.
    """
    namespace = obj["metadata"]["namespace"]
    links: dict[str, list[Link]] = {k.names.kind: [] for k in KINDS}
    notes: dict[str, str] = {}
    links[obj["kind"]].append(_link(obj, namespace, current=True))
    seen = {(obj["kind"], obj["metadata"]["name"])}

    ref, servers = _references(obj)
    also = [(await _referenced(request, who, s, namespace))[1] for s in servers]
    upstream: dict | None = obj
    while ref is not None and (ref.kind, ref.name) not in seen:
        seen.add((ref.kind, ref.name))
        upstream, link = await _referenced(request, who, ref, namespace)
        links[ref.kind].insert(0, link)
        ref = _references(upstream)[0] if upstream is not None else None

    members = {(obj["kind"], obj["metadata"]["name"])}
    order = [k.names.kind for k in KINDS]
    for kind in order[order.index(obj["kind"]) + 1 :]:
        plural = BY_KIND[kind].names.plural
        listed, problem = await _attempt(_list(request, who, plural, namespace))
        if problem is not None:
            notes[kind] = f"not allowed to list {plural}" if problem.status == 403 else problem.detail
            continue
        assert listed is not None
        for child in sorted(listed.get("items") or [], key=lambda o: o["metadata"]["name"]):
            child_ref = _references(child)[0]
            if child_ref is not None and (child_ref.kind, child_ref.name) in members:
                members.add((kind, child["metadata"]["name"]))
                links[kind].append(_link(child, namespace))
    stages = [{"kind": k, "links": links[k], "note": notes.get(k, "")} for k in order]
    return stages, also


# ---------------------------------------------------------------- results


def _results_view(kind: str, found: dict, base: str) -> dict:
    tables = evaluation_tables(found.get("summary") or {}) if kind == "EvalSweep" else []
    rows = [] if tables else flatten(found.get("summary") or {})
    # Links of the dashboard's own making: a file name is a path, quoted so any character in it stays in it.
    files = [{**f, "url": f"{base}/{urllib.parse.quote(f['name'])}"} for f in found.get("files") or []]
    return {
        "evaluation": tables,
        "setting_columns": [c.capitalize() for c in SETTING_COLUMNS],
        "curve_columns": [c.capitalize() for c in CURVE_COLUMNS],
        "summary": rows[:MAX_SUMMARY_ROWS],
        "cut": max(0, len(rows) - MAX_SUMMARY_ROWS),
        "images": [f for f in files if f.get("mediaType") == "image/png"],
        "files": [f for f in files if f.get("mediaType") != "image/png"],
        "outputUri": found.get("outputUri"),
    }


# ---------------------------------------------------------------- pages


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request):
    return _page("signin.html", namespace=_default_namespace(request))


def _form(body: bytes) -> dict[str, str]:
    fields = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    return {k: v[0] for k, v in fields.items()}


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request):
    if not _same_origin(request):
        return _page("signin.html", 403, namespace=_default_namespace(request), error="sign in from this site's form")
    form = _form(await request.body())
    token, namespace = form.get("token", "").strip(), form.get("namespace", "").strip() or "default"
    if not _valid_namespace(namespace):
        return _page("signin.html", 422, namespace="", error=f"{namespace!r} is not a namespace name")
    if not token:
        return _page("signin.html", 401, namespace=namespace, error="paste a Kubernetes token")
    if len(token) > MAX_COOKIE_TOKEN:
        return _page("signin.html", 422, namespace=namespace, error="this token is too long to keep in a cookie")
    try:
        who = await state(request).reviewer.authenticate(token)
    except Problem as e:
        error = "Kubernetes did not accept this token: it is not valid (expired, revoked or mistyped)"
        return _page("signin.html", e.status, namespace=namespace, error=error if e.status == 401 else e.detail)
    request.state.user = who.username
    out = RedirectResponse("/?" + urllib.parse.urlencode({"namespace": namespace}), 303)
    options = _cookie_options(request)
    out.set_cookie(TOKEN_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, **options)
    out.set_cookie(NAMESPACE_COOKIE, namespace, max_age=SESSION_SECONDS, **options)
    return out


@router.post("/signout")
async def signout(request: Request):
    if not _same_origin(request):
        return _page("error.html", 403, title="Forbidden", detail="sign out from this site's pages")
    out = _to_signin()
    out.delete_cookie(TOKEN_COOKIE, httponly=True, **_cookie_options(request))
    return out


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, namespace: str | None = None):
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who
    chosen = namespace or _default_namespace(request)
    if not _valid_namespace(chosen):
        return _error(who, "", Problem(422, "invalid-field", f"{chosen!r} is not a namespace name", "namespace"))
    sections = await asyncio.gather(*(_section(request, who, kind, chosen) for kind in KINDS))
    out = _page("index.html", who=who, namespace=chosen, sections=sections, limit=LIST_LIMIT)
    if namespace:
        out.set_cookie(NAMESPACE_COOKIE, chosen, max_age=SESSION_SECONDS, **_cookie_options(request))
    return out


@router.get("/ui/namespaces/{namespace}/{plural}/{name}", response_class=HTMLResponse)
async def run_page(namespace: Namespace, plural: str, name: Name, request: Request):
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who

    async def get() -> dict:
        plural_kind(plural)
        await allow(request, who, "get", plural, namespace, name=name)
        return await state(request).kube.call("GET", resource_path(namespace, plural, name))

    obj, problem = await _attempt(get())
    if problem is not None:
        return _error(who, namespace, problem)
    assert obj is not None
    kind, created = obj["kind"], obj["metadata"].get("creationTimestamp")
    (events, events_problem), (found, results_problem), (stages, also) = await asyncio.gather(
        _attempt(inspect_routes.events(namespace, plural, name, request, who)),
        _attempt(inspect_routes.results_index(namespace, plural, name, request, who)),
        _chain(request, who, obj),
    )
    status = obj.get("status") or {}
    return _page(
        "run.html",
        who=who,
        namespace=namespace,
        kind=kind,
        name=name,
        plural=plural,
        phase=status.get("phase") or "Pending",
        message=status.get("message"),
        facts=[
            ("created", f"{created} ({age(created, datetime.now(timezone.utc))} ago)" if created else ""),
            ("input", status.get("inputUri") or ""),
            ("output", status.get("outputUri") or status.get("endpoint") or ""),
        ],
        progress=_progress(obj) if kind == "SFTRun" else {},
        condition_type=OPERATED[kind].primary,
        conditions=status.get("conditions") or [],
        events=(events or {}).get("items") or [],
        events_problem=events_problem.detail if events_problem else None,
        stages=stages,
        also=also,
        results=_results_view(kind, found, f"/v1/namespaces/{namespace}/{plural}/{name}/results") if found else None,
        results_problem=results_problem.detail if results_problem else None,
        logs_url=f"/v1/namespaces/{namespace}/{plural}/{name}/logs?follow=true&tail={LOG_TAIL}",
    )
