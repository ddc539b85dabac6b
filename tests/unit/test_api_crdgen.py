"""CRD generation: committed CRDs are fresh, and pydantic schemas become structural ones."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from thinkube.api import crdgen
from thinkube.api.model import Model
from thinkube.api.resources import KINDS, SFTRun
from thinkube.api.resources.common import Quantity
from thinkube.api.structural import SchemaError, structural


def test_committed_crds_match_the_models():
    assert crdgen.check(crdgen.DEFAULT_OUT) == [], "run `python -m thinkube.api.crdgen` and commit the result"


def test_check_reports_stale_missing_and_extra_files(tmp_path, capsys):
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "sftruns.yaml").write_text("stale\n")
    (tmp_path / "evalsweeps.yaml").unlink()
    (tmp_path / "other.yaml").write_text("x\n")
    assert crdgen.check(tmp_path) == ["evalsweeps.yaml", "other.yaml", "sftruns.yaml"]
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1
    assert "python -m thinkube.api.crdgen" in capsys.readouterr().err


def _walk(schema: dict, path: str = ""):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _walk(schema[key], f"{path}[{key}]")


@pytest.mark.parametrize("resource", KINDS, ids=lambda r: r.names.kind)
def test_every_crd_is_structural_and_named_by_the_contract(resource):
    doc = crdgen.crd(resource)
    names, version = doc["spec"]["names"], doc["spec"]["versions"][0]
    assert doc["metadata"]["name"] == f"{resource.names.plural}.thinkube.dev"
    assert (doc["spec"]["scope"], names["shortNames"], names["categories"]) == (
        "Namespaced",
        [resource.names.short],
        ["thinkube"],
    )
    assert "status" in version["subresources"]
    assert ("scale" in version["subresources"]) == (resource.names.kind == "BudgetForcedServer")
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[0] == "Phase" and columns[-1] == "Age"
    for path, node in _walk(version["schema"]["openAPIV3Schema"]):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not {"$ref", "allOf", "title", "const"} & set(node), path
        assert "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path


def test_sftrun_crd_carries_the_s1_defaults_and_immutable_base_model():
    root = crdgen.crd(SFTRun)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    training = spec["properties"]["training"]
    assert training["default"] == {}  # so the API server fills in the nested defaults
    assert {k: training["properties"][k]["default"] for k in ("epochs", "learningRate", "globalBatchSize")} == {
        "epochs": 5,
        "learningRate": 1e-5,
        "globalBatchSize": 16,
    }
    assert spec["properties"]["nodes"]["default"] == 2 and spec["properties"]["gpusPerNode"]["default"] == 8
    # At the root, where the rule sees the status; none on the field, which would freeze it from creation.
    (rule,) = root["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".spec.baseModel" and "oldSelf.status.jobName" in rule["rule"]
    assert "x-kubernetes-validations" not in spec["properties"]["baseModel"]


class Inner(Model):
    n: int = Field(3, gt=0, lt=10)


class Outer(Model):
    inner: Inner = Field(default_factory=Inner)
    maybe: Inner | None = None
    mode: str = Field("a", json_schema_extra={"enum": ["a", "b"]})
    size: Quantity | None = None
    tags: dict[str, str] = Field(default_factory=dict)


def test_structural_conversion():
    s = structural(Outer.model_json_schema(by_alias=True))
    inner, maybe = s["properties"]["inner"], s["properties"]["maybe"]
    assert inner["default"] == {} and "default" not in maybe  # factory default vs optional
    assert maybe["type"] == "object" and maybe["properties"]["n"] == {
        "type": "integer",
        "default": 3,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 10,
        "exclusiveMaximum": True,
    }
    assert s["properties"]["size"]["x-kubernetes-int-or-string"] is True
    assert s["properties"]["tags"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert s["properties"]["mode"] == {"type": "string", "default": "a", "enum": ["a", "b"]}
    assert "additionalProperties" not in s and "title" not in s


def test_unions_and_unknown_keywords_fail_loudly_with_the_path():
    class Union(BaseModel):
        v: int | str

    with pytest.raises(SchemaError, match=r"\.v: unions"):
        structural(Union.model_json_schema())
    with pytest.raises(SchemaError, match=r"\.w: JSON Schema keyword 'patternProperties'"):
        structural({"type": "object", "properties": {"w": {"type": "object", "patternProperties": {}}}})
