"""Artifact URIs shared by every stage: `file://`, `pvc://`, `hf://`, `s3://` and plain paths.

Inside a pod the operator mounts each referenced PVC at `<THINKUBE_PVC_ROOT>/<claim>`, so a
`pvc://claim/path` URI is a local path there; `hf://` ids are left to the Hub client of the
user's own run (never fetched in tests or the demo).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from thinkube.constants import DEFAULT_PVC_ROOT, ENV_PVC_ROOT

SCHEMES = ("file", "pvc", "hf", "s3")


@dataclass(frozen=True)
class ArtifactURI:
    scheme: str  # one of SCHEMES; "file" for plain paths
    location: str  # path for file/pvc (after mapping), repo id for hf, bucket/key for s3
    revision: str | None = None  # hf only: `hf://org/name@rev`

    @property
    def is_local(self) -> bool:
        return self.scheme in ("file", "pvc")


def parse_uri(uri: str) -> ArtifactURI:
    if not uri or not uri.strip():
        raise ValueError(
            "empty URI: give a path or one of file://, pvc://<claim>/<path>, hf://<repo>, s3://<bucket>/<key>"
        )
    if "://" not in uri:
        return ArtifactURI("file", str(Path(uri).expanduser()))
    scheme, rest = uri.split("://", 1)
    if scheme not in SCHEMES:
        raise ValueError(
            f"unsupported URI scheme {scheme!r} in {uri!r}: use one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme == "file":
        return ArtifactURI("file", rest)
    if scheme == "pvc":
        claim, _, sub = rest.partition("/")
        if not claim:
            raise ValueError(f"{uri!r}: pvc URIs name a claim: pvc://<claim>/<path>")
        root = Path(os.environ.get(ENV_PVC_ROOT, DEFAULT_PVC_ROOT))
        return ArtifactURI("pvc", str(root / claim / sub))
    if scheme == "hf":
        repo, _, rev = rest.partition("@")
        if repo.count("/") != 1:
            raise ValueError(f"{uri!r}: hf URIs name a repository: hf://<org>/<name>[@revision]")
        return ArtifactURI("hf", repo, rev or None)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri!r}: s3 URIs name a bucket: s3://<bucket>/<key>")
    return ArtifactURI("s3", rest)


def local_path(uri: str) -> Path:
    """The local path of a file/pvc URI; other schemes must be fetched first, which this refuses."""
    parsed = parse_uri(uri)
    if not parsed.is_local:
        raise ValueError(f"{uri!r} is not a local artifact (scheme {parsed.scheme}://): copy it to a PVC or path first")
    return Path(parsed.location)
