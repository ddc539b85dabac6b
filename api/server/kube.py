"""The control plane's own connection to the Kubernetes API: async HTTP with its ServiceAccount.

In a pod it reads the ServiceAccount token fresh (the kubelet rotates it); elsewhere it uses
$KUBECONFIG (or ~/.kube/config), through the official client's loader so every kubeconfig
form (certificates, tokens, exec plugins) works.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from thinkube.api.server.problems import Problem, from_kube

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
TOKEN_REREAD_S = 60


@dataclass
class Connection:
    host: str
    verify: ssl.SSLContext | bool
    token_file: Path | None = None  # in a pod: re-read, since the kubelet rotates it
    token: str | None = None
    cert: tuple[str, str] | None = None


def load_connection() -> Connection:
    from kubernetes import config
    from kubernetes.client import Configuration

    cfg = Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
        in_cluster = True
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)
        in_cluster = False
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    if cert:
        context.load_cert_chain(*cert)
    verify: ssl.SSLContext | bool = context if cfg.verify_ssl else False
    header = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    token = header.removeprefix("Bearer ").strip() if header else None
    return Connection(cfg.host, verify, IN_CLUSTER_TOKEN if in_cluster else None, token, cert)


class Kube:
    """JSON calls to the API server; its errors become problems that keep their field."""

    def __init__(self, conn: Connection, timeout_s: float = 30, max_connections: int = 64):
        self.conn = conn
        self._token, self._read_at = conn.token, 0.0
        self.http = httpx.AsyncClient(
            base_url=conn.host,
            verify=conn.verify,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def _headers(self, content_type: str | None) -> dict[str, str]:
        if self.conn.token_file and time.monotonic() - self._read_at > TOKEN_REREAD_S:
            self._token, self._read_at = self.conn.token_file.read_text().strip(), time.monotonic()
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def call(
        self,
        method: str,
        path: str,
        body: Mapping | None = None,
        params: Mapping[str, str | None] | None = None,
        content_type: str = "application/json",
    ) -> dict:
        content = json.dumps(body).encode() if body is not None else None
        try:
            r = await self.http.request(
                method,
                path,
                content=content,
                params=_query(params or {}),
                headers=self._headers(content_type if content is not None else None),
            )
        except httpx.HTTPError as e:
            raise Problem(502, "kubernetes-unreachable", f"the Kubernetes API did not answer: {type(e).__name__}")
        data = _json_or_message(r)
        if r.status_code >= 400:
            raise from_kube(r.status_code, data)
        return _without_managed_fields(data)

    async def text(self, path: str, params: Mapping[str, str | None]) -> str:
        r = await self.http.get(path, params=_query(params), headers=self._headers(None))
        if r.status_code >= 400:
            raise from_kube(r.status_code, _json_or_message(r))
        return r.text

    async def stream_lines(self, path: str, params: Mapping[str, str | None]) -> AsyncIterator[str]:
        async with self.http.stream("GET", path, params=_query(params), headers=self._headers(None), timeout=None) as r:
            if r.status_code >= 400:
                await r.aread()
                raise from_kube(r.status_code, _json_or_message(r))
            async for line in r.aiter_lines():
                yield line

    async def ready(self) -> bool:
        try:
            r = await self.http.get("/readyz", headers=self._headers(None), timeout=5)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def close(self) -> None:
        await self.http.aclose()


def _query(params: Mapping[str, str | None]) -> dict[str, str]:
    """Query parameters without the ones left unset."""
    return {k: v for k, v in params.items() if v is not None}


def _json_or_message(r: httpx.Response) -> dict:
    try:
        return r.json()
    except ValueError:
        return {"message": r.text[:500]}


def _without_managed_fields(data: dict) -> dict:
    """managedFields are server-side apply bookkeeping: kubectl hides them too."""
    for obj in [data, *(data.get("items") or [])]:
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            obj["metadata"].pop("managedFields", None)
    return data
