from __future__ import annotations

import pytest

from thinkube.constants import ENV_PVC_ROOT
from thinkube.workloads.models import TINY, resolve_model
from thinkube.workloads.uris import local_path, parse_uri


def test_parse_uri_forms(monkeypatch):
    monkeypatch.setenv(ENV_PVC_ROOT, "/mnt/x")
    assert parse_uri("/data/a.jsonl").location == "/data/a.jsonl"
    assert parse_uri("file:///data/a.jsonl").location == "/data/a.jsonl"
    assert parse_uri("pvc://models/s1/final").location == "/mnt/x/models/s1/final"
    hf = parse_uri("hf://Qwen/Qwen2.5-32B-Instruct@main")
    assert (hf.scheme, hf.location, hf.revision) == ("hf", "Qwen/Qwen2.5-32B-Instruct", "main")
    assert parse_uri("s3://bucket/key/x").location == "bucket/key/x"


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("", "empty URI"),
        ("ftp://x/y", "unsupported URI scheme 'ftp'"),
        ("hf://justname", "hf://<org>/<name>"),
        ("pvc:///x", "pvc://<claim>/<path>"),
    ],
)
def test_parse_uri_rejects_with_fix(bad, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace("[", r"\[")):
        parse_uri(bad)


def test_local_path_refuses_remote():
    with pytest.raises(ValueError, match="not a local artifact"):
        local_path("hf://org/name")


def test_resolve_model(tmp_path):
    path, rev = resolve_model(TINY)
    assert (tmp_path.parent / path / "config.json").is_file() and rev is None
    assert resolve_model("hf://Qwen/Qwen2.5-0.5B") == ("Qwen/Qwen2.5-0.5B", None)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(f"file://{tmp_path}") == (str(tmp_path), None)
