"""The base of every typed Thinkube object (resources and stage configs), and cross-field rules.

One definition serves three readers: the operator and the control plane validate with these
pydantic models, the workloads read their stage configs with them, and `thinkube.api.crdgen`
turns them into the CRDs' OpenAPI schemas. A cross-field check is therefore written once as
a `Rule` that carries both its CEL text (for the API server) and the same check in Python
(for pydantic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel


@dataclass(frozen=True)
class Rule:
    """A cross-field check: CEL for the API server, the same check in Python for pydantic.

    (Transition rules, which compare with the stored object, are CEL only: see
    `CustomResource.transition_rules`.)
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None  # relative to the object the rule sits on, e.g. ".minThinkingTokens"

    def to_cel(self) -> dict:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def _schema_extra(schema: dict, cls: type) -> None:
    rules = getattr(cls, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_cel() for r in rules]


class Model(BaseModel):
    """camelCase on the wire (as Kubernetes), snake_case in Python; unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        json_schema_extra=_schema_extra,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self):
        for rule in type(self).rules:
            if not rule.check(self):
                raise ValueError(f"{rule.field_path.lstrip('.') + ': ' if rule.field_path else ''}{rule.message}")
        return self

    def wire(self) -> dict:
        """The Kubernetes (camelCase, JSON-ready) form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def exactly_one(where: str, **fields: str) -> Rule:
    """Rule: set exactly one of two alternative fields, given as wire name=python name."""
    (a, attr_a), (b, attr_b) = fields.items()
    return Rule(
        f"has(self.{a}) != has(self.{b})",
        f"set exactly one of {where}.{a} or {where}.{b}",
        check=lambda m: (getattr(m, attr_a) is None) != (getattr(m, attr_b) is None),
    )
