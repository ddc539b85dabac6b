"""The few Kubernetes API calls the operator makes, on plain dicts.

Raw REST through the official client's ApiClient (auth, TLS, kubeconfig) rather than its
typed APIs or DynamicClient: children are built as dicts, and typed models or API
discovery would only add conversions and start-up requests.
"""

from __future__ import annotations

import json
from typing import Mapping

from kubernetes import client, config

from thinkube.api.resources import KINDS
from thinkube.constants import API_VERSION, FIELD_MANAGER

# (apiVersion, kind) -> plural of every kind the operator reads or writes.
PLURALS: dict[tuple[str, str], str] = {
    ("batch/v1", "Job"): "jobs",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("apps/v1", "Deployment"): "deployments",
    **{(API_VERSION, k.names.kind): k.names.plural for k in KINDS},
}


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def connect() -> client.ApiClient:
    """In a pod: its service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    out = f"{base}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return f"{out}/{name}" if name else out


class Kube:
    def __init__(self, api: client.ApiClient, field_manager: str = FIELD_MANAGER, timeout_s: float = 30):
        self.api, self.field_manager, self.timeout_s = api, field_manager, timeout_s

    def _call(
        self,
        method: str,
        url: str,
        body: Mapping | None = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict:
        req = self.api.param_serialize(
            method,
            url,
            query_params=query or [],
            body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(*req, _request_timeout=self.timeout_s)
        data = json.loads(resp.read() or b"{}")
        if not 200 <= resp.status <= 299:
            raise ApiError(resp.status, data.get("reason", resp.reason), data.get("message", str(data)))
        return data

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        try:
            return self._call("GET", path(api_version, kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]) -> list[dict]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        return self._call("GET", path(api_version, kind, namespace), query=[("labelSelector", selector)])["items"]

    def apply(self, obj: Mapping) -> dict:
        """Server-side apply, forcing our field manager's ownership of the fields we set."""
        url = path(obj["apiVersion"], obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        return self._call(
            "PATCH",
            url,
            body=obj,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", self.field_manager), ("force", "true")],
        )

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping) -> dict:
        """JSON merge patch of the status subresource (None values delete keys)."""
        return self._call(
            "PATCH",
            path(api_version, kind, namespace, name) + "/status",
            body={"status": patch},
            content_type="application/merge-patch+json",
        )
