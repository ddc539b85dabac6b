"""What every route needs: the Kubernetes connection, the reviewer, and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from thinkube.api.server.auth import Action, Caller, Reviewer
from thinkube.api.server.kube import Kube
from thinkube.api.server.problems import unauthorized
from thinkube.api.server.settings import ApiSettings
from thinkube.constants import GROUP

TOKEN_COOKIE = "thinkube_token"  # the dashboard's sign-in; HttpOnly, so page scripts never see it
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Namespace = Annotated[str, Path(pattern=DNS_LABEL, max_length=63, description="the namespace")]
Name = Annotated[str, Path(pattern=DNS_SUBDOMAIN, max_length=253, description="the resource's name")]


@dataclass
class State:
    settings: ApiSettings
    kube: Kube
    reviewer: Reviewer


def state(request: Request) -> State:
    return request.app.state.thinkube


SAFE_METHODS = {"GET", "HEAD"}


def header_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def bearer(request: Request) -> str | None:
    """The Authorization header's token; for reads only, the dashboard's sign-in cookie.

    Changes need the header: a cookie travels with requests another site makes the browser
    send, a header does not (on top of the cookie being SameSite=Strict).
    """
    token = header_token(request)
    if token:
        return token
    if request.method in SAFE_METHODS:
        return request.cookies.get(TOKEN_COOKIE) or None
    return None


async def caller(request: Request) -> Caller:
    token = bearer(request)
    if not token:
        raise unauthorized("send a Kubernetes bearer token: Authorization: Bearer <token>")
    who = await state(request).reviewer.authenticate(token)
    request.state.user = who.username  # for the access log
    return who


CallerDep = Annotated[Caller, Depends(caller)]


async def allow(request: Request, who: Caller, verb: str, plural: str, namespace: str, **kw: str) -> None:
    """Raises 403 unless RBAC lets the caller do `verb` on the kind in the namespace."""
    group = kw.pop("group", GROUP)
    await state(request).reviewer.authorize(who, Action(verb, plural, namespace, group=group, **kw))
