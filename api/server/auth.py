"""Who is calling (TokenReview) and whether Kubernetes RBAC lets them (SubjectAccessReview).

The control plane acts with its own ServiceAccount after asking the API server whether the
caller may do the same action. Impersonating the caller instead would need the `impersonate`
verb on users, groups and service accounts: whoever controls the control plane could then
act as anyone, cluster admins included. Reviews only need `create` on two review APIs.

Review results are cached for a few seconds, keyed by a SHA-256 of the token (never the
token itself), so a dashboard's burst of requests costs one review.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from thinkube.api.server.kube import Kube
from thinkube.api.server.problems import Problem, unauthorized

SA_PREFIX = "system:serviceaccount:"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"


@dataclass(frozen=True)
class Caller:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) when the caller is a ServiceAccount."""
        if not self.username.startswith(SA_PREFIX):
            return None
        ns, _, name = self.username[len(SA_PREFIX) :].partition(":")
        return ns, name

    def one(self, key: str) -> str | None:
        values = self.extra.get(key) or []
        return values[0] if values else None


@dataclass(frozen=True)
class Action:
    verb: str
    resource: str
    namespace: str
    group: str = ""
    subresource: str = ""
    name: str = ""

    def describe(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        what = f"{what}.{self.group}" if self.group else what
        return f"{self.verb} {what} in namespace {self.namespace}"


class TTLCache:
    def __init__(self, ttl_s: float, max_entries: int = 10_000):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._items: dict[tuple, tuple[float, object]] = {}

    def get(self, key: tuple):
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return hit[1]

    def put(self, key: tuple, value) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._items) >= self.max_entries:  # drop the oldest half rather than grow without bound
            for k in list(self._items)[: self.max_entries // 2]:
                del self._items[k]
        self._items[key] = (time.monotonic() + self.ttl_s, value)


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Reviewer:
    def __init__(self, kube: Kube, cache_seconds: float, on_review: Callable[[], None] = lambda: None):
        self.kube = kube
        self.cache = TTLCache(cache_seconds)
        self.on_review = on_review  # counts calls made to the review APIs (the cache saves the rest)

    async def authenticate(self, token: str, audiences: tuple[str, ...] = ()) -> Caller:
        key = ("authn", token_key(token), audiences)
        cached = self.cache.get(key)
        if cached is None:
            spec: dict = {"token": token}
            if audiences:
                spec["audiences"] = list(audiences)
            self.on_review()
            review = await self.kube.call(
                "POST",
                "/apis/authentication.k8s.io/v1/tokenreviews",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
            )
            status = review.get("status") or {}
            user = status.get("user") or {}
            cached = (
                Caller(user["username"], user.get("uid", ""), tuple(user.get("groups") or ()), user.get("extra") or {})
                if status.get("authenticated") and user.get("username")
                else False
            )
            self.cache.put(key, cached)
        if cached is False:
            raise unauthorized("the bearer token is not valid (expired, revoked or for another audience)")
        assert isinstance(cached, Caller)
        return cached

    async def authorize(self, caller: Caller, action: Action) -> None:
        key = ("authz", caller.username, caller.uid, caller.groups, action)
        allowed = self.cache.get(key)
        if allowed is None:
            attributes = {"verb": action.verb, "resource": action.resource, "namespace": action.namespace}
            for name, value in (("group", action.group), ("subresource", action.subresource), ("name", action.name)):
                if value:
                    attributes[name] = value
            self.on_review()
            review = await self.kube.call(
                "POST",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {
                        "user": caller.username,
                        "uid": caller.uid,
                        "groups": list(caller.groups),
                        "extra": caller.extra,
                        "resourceAttributes": attributes,
                    },
                },
            )
            allowed = bool((review.get("status") or {}).get("allowed"))
            self.cache.put(key, allowed)
        if not allowed:
            raise Problem(403, "forbidden", f"not allowed to {action.describe()}")
