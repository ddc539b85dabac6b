"""Python client of the control plane (`thinkube api`): the four resources over REST.

Every call presents a Kubernetes bearer token; Kubernetes RBAC decides what it may do. The
token is sent only in the Authorization header: never logged, printed or put in a URL.
Resources are checked locally with the same pydantic models that generate the CRDs, so a
bad field is named before anything is sent.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from thinkube.api.resources import KINDS
from thinkube.api.resources.common import CustomResource
from thinkube.constants import API_VERSION, ENV_API_TOKEN, ENV_API_TOKEN_FILE, ENV_API_URL

MERGE_PATCH = "application/merge-patch+json"


class ClientError(Exception):
    """Anything this client raises: a bad resource, no connection, or an error answer."""


class ApiError(ClientError):
    """An error answer of the control plane, from its problem+json body."""

    def __init__(self, status: int, type: str, title: str, detail: str, field: str | None = None):
        self.status, self.type, self.title, self.detail, self.field = status, type, title, detail, field
        super().__init__(f"{status} {title}: {detail}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not ours: a proxy or load balancer in between answered
            text = response.text.strip()[:500]
            return cls(response.status_code, "about:blank", response.reason_phrase, text or response.reason_phrase)
        return cls(
            int(body.get("status") or response.status_code),
            str(body.get("type") or "about:blank"),
            str(body.get("title") or response.reason_phrase),
            str(body.get("detail") or ""),
            body.get("field"),
        )


class Unreachable(ClientError):
    """No answer from the control plane (connection refused, DNS, TLS, timeout)."""


class InvalidResource(ClientError, ValueError):
    """A resource its kind's model rejects; `problems` holds (field, message) pairs, fields dotted."""

    def __init__(self, what: str, problems: list[tuple[str | None, str]]):
        self.what, self.problems = what, problems
        super().__init__(f"{what}: " + "; ".join(f"{f}: {m}" if f else m for f, m in problems))


def resolve_kind(name: str) -> type[CustomResource]:
    """The resource class for a kind ("SFTRun"), a plural ("sftruns"), singular or short name ("sft")."""
    key = name.strip().lower()
    for kind in KINDS:
        n = kind.names
        if key in (n.kind.lower(), n.plural, n.short):
            return kind
    known = ", ".join(f"{k.names.kind} ({k.names.plural}, {k.names.short})" for k in KINDS)
    raise ValueError(f"unknown kind {name!r}: use one of {known}")


def _problems(error: ValidationError, prefix: str) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for e in error.errors():
        message = e["msg"].removeprefix("Value error, ")
        out.append((".".join([prefix, *map(str, e["loc"])]), message))
    return out


def check(resource: Mapping[str, Any] | CustomResource) -> tuple[type[CustomResource], dict]:
    """The resource's class and its JSON body, checked with that kind's own model.

    Models are sent as Kubernetes writes them (camelCase, without unset fields); mappings are
    sent as given, so what they leave out takes the server's defaults. Neither carries status.
    """
    if isinstance(resource, CustomResource):
        kind: type[CustomResource] = type(resource)
        body = resource.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"})
    else:
        if not resource.get("kind"):
            raise InvalidResource("resource", [("kind", f"required: one of {', '.join(k.names.kind for k in KINDS)}")])
        try:
            kind = resolve_kind(str(resource["kind"]))
        except ValueError as e:
            raise InvalidResource("resource", [("kind", str(e))]) from None
        body = {k: v for k, v in resource.items() if k != "status"}  # the server's to write, as kubectl treats it
        body.update(apiVersion=resource.get("apiVersion") or API_VERSION, kind=kind.names.kind)
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    what = f"{kind.names.kind}/{meta.get('name') or meta.get('generateName') or '?'}"
    problems: list[tuple[str | None, str]] = []
    if body["apiVersion"] != API_VERSION:
        problems.append(("apiVersion", f"must be {API_VERSION}, not {body['apiVersion']!r}"))
    if not (meta.get("name") or meta.get("generateName")):
        problems.append(("metadata.name", "required (or metadata.generateName)"))
    spec_model = kind.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    if not isinstance(body.get("spec"), Mapping):
        problems.append(("spec", "required: a mapping of the resource's settings"))
    else:
        try:
            spec_model.model_validate(body["spec"])
        except ValidationError as e:
            problems.extend(_problems(e, "spec"))
    if problems:
        raise InvalidResource(what, problems)
    return kind, body


def _read_token_file(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise ClientError(f"cannot read the token file {path}: {e.strerror or e}") from None


class Client:
    """The control plane at `base_url`, called with one Kubernetes bearer token."""

    def __init__(self, base_url: str, token: str, timeout: float = 30, *, transport: httpx.BaseTransport | None = None):
        if not base_url:
            raise ClientError(f"no control-plane URL: give one (or set {ENV_API_URL})")
        if not token:
            raise ClientError(f"no token: set {ENV_API_TOKEN} or {ENV_API_TOKEN_FILE}")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, timeout: float = 30) -> Client:
        """From THINKUBE_API_URL and THINKUBE_API_TOKEN, or the token in THINKUBE_API_TOKEN_FILE."""
        token = environ.get(ENV_API_TOKEN) or ""
        if not token and environ.get(ENV_API_TOKEN_FILE):
            token = _read_token_file(environ[ENV_API_TOKEN_FILE])
        return cls(environ.get(ENV_API_URL, ""), token, timeout)

    @classmethod
    def from_token_file(cls, base_url: str, token_file: str, timeout: float = 30) -> Client:
        return cls(base_url, _read_token_file(token_file), timeout)

    def __repr__(self) -> str:  # never the token
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ HTTP

    @staticmethod
    def _path(namespace: str, kind: str | type[CustomResource], name: str | None = None, *rest: str) -> str:
        plural = (kind if isinstance(kind, type) else resolve_kind(kind)).names.plural
        parts = ["v1", "namespaces", namespace, plural, *([name] if name else []), *rest]
        return "/" + "/".join(quote(p, safe="") for p in parts)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise Unreachable(f"no answer from the control plane at {self.base_url}: {e}") from None
        if response.is_error:
            raise ApiError.from_response(response)
        return response

    @contextmanager
    def _stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives (logs, files); errors as for every other call."""
        try:
            with self._http.stream("GET", path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                yield response
        except httpx.TransportError as e:
            raise Unreachable(f"no answer from the control plane at {self.base_url}: {e}") from None

    def _json(self, method: str, path: str, **kwargs: Any) -> dict:
        return self._request(method, path, **kwargs).json()

    @staticmethod
    def _dry_run(dry_run: bool) -> dict[str, str]:
        return {"dryRun": "All"} if dry_run else {}

    # ------------------------------------------------------------ resources

    def create(self, resource: Mapping[str, Any] | CustomResource, namespace: str = "default", dry_run: bool = False):
        """Create a resource (a model or its Kubernetes-shaped mapping); the created object.

        Raises InvalidResource before sending when the kind's model rejects it.
        """
        kind, body = check(resource)
        return self._json("POST", self._path(namespace, kind), json=body, params=self._dry_run(dry_run))

    def list(
        self, kind: str, namespace: str = "default", label_selector: str | None = None, limit: int | None = None
    ) -> Iterator[dict]:
        """Every object of a kind, following `continue` page by page (`limit`: objects per page)."""
        params: dict[str, str | int] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if limit:
            params["limit"] = limit
        path = self._path(namespace, kind)
        while True:
            page = self._json("GET", path, params=params)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params["continue"] = token

    def get(self, kind: str, name: str, namespace: str = "default") -> dict:
        return self._json("GET", self._path(namespace, kind, name))

    def patch(self, kind: str, name: str, patch: Mapping[str, Any], namespace: str = "default", dry_run: bool = False):
        """Apply a JSON merge patch, e.g. {"spec": {"suspend": True}}; the patched object."""
        return self._json(
            "PATCH",
            self._path(namespace, kind, name),
            json=dict(patch),
            params=self._dry_run(dry_run),
            headers={"Content-Type": MERGE_PATCH},
        )

    def suspend(self, kind: str, name: str, namespace: str = "default") -> dict:
        return self.patch(kind, name, {"spec": {"suspend": True}}, namespace)

    def resume(self, kind: str, name: str, namespace: str = "default") -> dict:
        return self.patch(kind, name, {"spec": {"suspend": False}}, namespace)

    def delete(self, kind: str, name: str, namespace: str = "default", dry_run: bool = False) -> dict:
        return self._json("DELETE", self._path(namespace, kind, name), params=self._dry_run(dry_run))

    def events(self, kind: str, name: str, namespace: str = "default") -> builtins.list[dict]:
        return self._json("GET", self._path(namespace, kind, name, "events")).get("items") or []

    def logs(
        self,
        kind: str,
        name: str,
        namespace: str = "default",
        *,
        follow: bool = False,
        tail: int | None = None,
        rank: int | None = None,
        container: str | None = None,
    ) -> Iterator[str]:
        """The workload's log lines (rank: which SFTRun pod); with follow, until the pod ends."""
        params: dict[str, str | int] = {"follow": "true" if follow else "false"}
        for key, value in (("tail", tail), ("rank", rank), ("container", container)):
            if value is not None:
                params[key] = value
        # A followed log is quiet for as long as the workload is: no read timeout then.
        timeout = httpx.Timeout(self._http.timeout.connect, read=None) if follow else self._http.timeout
        with self._stream(self._path(namespace, kind, name, "logs"), params=params, timeout=timeout) as response:
            yield from response.iter_lines()

    def results(self, kind: str, name: str, namespace: str = "default") -> dict:
        """{"kind", "name", "phase", "outputUri", "files": [{"name", "mediaType", "size", "url"}], "summary"}."""
        return self._json("GET", self._path(namespace, kind, name, "results"))

    def result_file(self, kind: str, name: str, file: str, namespace: str = "default") -> bytes:
        return self._request("GET", self._path(namespace, kind, name, "results", *file.split("/"))).content

    def save_result_file(self, kind: str, name: str, file: str, dest: Path, namespace: str = "default") -> int:
        """Stream one result file to `dest` (checkpoints can be large); the bytes written."""
        path = self._path(namespace, kind, name, "results", *file.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        written = 0
        try:
            with self._stream(path) as response, partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    written += out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(dest)  # a cut download never looks complete
        return written
