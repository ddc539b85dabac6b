"""pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema.

The API server accepts only structural schemas: every node has a `type` (or is an
int-or-string), no `$ref`, no `anyOf` with null, no `additionalProperties` next to
`properties`. pydantic emits all of those, so this rewrites the tree:
- `$ref` to `$defs` inlined; sibling keys (description, default) win over the target's;
- `Optional[X]` (`anyOf: [X, {type: null}]`) becomes X: absence is how Kubernetes says none,
  and the API server prunes explicit nulls of non-nullable fields before validation;
- `const` becomes a one-value `enum`; draft-2020 numeric `exclusiveMinimum: n` becomes
  OpenAPI 3.0's `minimum: n, exclusiveMinimum: true` (and the same for maximum);
- a nested object that pydantic builds with `default_factory` gets `default: {}`, so the
  API server fills in its fields' defaults even when the user leaves the object out;
- titles and `additionalProperties: false` are dropped (unknown fields are pruned, and
  `kubectl apply` rejects them by default).
Any other keyword fails loudly with its path, so a new pydantic feature can't slip an
invalid schema into a CRD.
"""

from __future__ import annotations

from typing import Any

# Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps subset we use).
PASSTHROUGH = {
    "type",
    "description",
    "format",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "required",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
}
DROPPED = {"title", "examples"}
INT_OR_STRING = "x-kubernetes-int-or-string"


# Readable output: what a field is first, its nested fields last.
FIRST, LAST = ("type", "description", "default"), ("required", "properties", "additionalProperties", "items")


def _key_order(key: str) -> tuple[int, int]:
    if key in FIRST:
        return 0, FIRST.index(key)
    return (2, LAST.index(key)) if key in LAST else (1, 0)


class SchemaError(ValueError):
    pass


def structural(schema: dict) -> dict:
    """Convert a whole `model_json_schema(by_alias=True)` result."""
    return _node(schema, schema.get("$defs", {}), "")


def _node(node: dict, defs: dict, path: str) -> dict:
    node = _resolve(node, defs, path)
    if node.get(INT_OR_STRING):
        # Kept as Kubernetes spells it: anyOf [integer, string] is allowed only here.
        return {k: v for k, v in node.items() if k not in DROPPED}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED or key == "$defs":
            continue
        if key == "properties":
            required = set(node.get("required", ()))
            out["properties"] = {
                name: _property(sub, defs, f"{path}.{name}", name in required) for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = _node(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):  # a map: dict[str, X]
                out["additionalProperties"] = _node(value, defs, f"{path}.*")
            # False: the default for structural schemas (pruning), so nothing to say
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        elif key == "default":
            out["default"] = _without_nulls(value)
        elif key in PASSTHROUGH:
            out[key] = value
        else:
            raise SchemaError(
                f"{path or '<root>'}: JSON Schema keyword {key!r} has no structural equivalent; "
                f"add it to api/structural.py or change the model"
            )
    if "type" not in out:
        raise SchemaError(
            f"{path or '<root>'}: no type after conversion ({sorted(node)}); give the field a concrete type"
        )
    if out.get("default") is None:
        out.pop("default", None)
    return {k: out[k] for k in sorted(out, key=_key_order)}


def _property(raw: dict, defs: dict, path: str, required: bool) -> dict:
    prop = _node(raw, defs, path)
    # pydantic writes `default` for every plain default (None included) but none for a
    # default_factory: an object field without one is built from its own fields' defaults.
    if (
        not required
        and "default" not in raw
        and prop.get("type") == "object"
        and "properties" in prop
        and not prop.get("required")
    ):
        prop["default"] = {}
    return prop


def _resolve(node: dict, defs: dict, path: str) -> dict:
    """Inline `$ref`/`allOf: [one]` and unwrap `Optional[...]`, keeping sibling keys."""
    while True:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        elif "anyOf" in node and not node.get(INT_OR_STRING):
            branches = [b for b in node["anyOf"] if b != {"type": "null"}]
            if len(branches) != 1:
                raise SchemaError(
                    f"{path or '<root>'}: unions are not structural; use one type (or the Quantity int-or-string type)"
                )
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**branches[0], **rest}
        else:
            return node


def _without_nulls(value: Any) -> Any:
    """Defaults as the API server stores them: unset optional fields absent, not null."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
