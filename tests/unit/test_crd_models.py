"""The ManagedSecret CRD's schema and the pydantic spec/status models say the same thing.

The schema is the first line (admission), the models the second (a spec written before a CRD
upgrade, a cluster without CEL) and what the services read, so a field in one and not the
other is a bug: dropped by the API server's pruning, or refused by the operator. Walking both
side by side, every field must be on both sides, with a compatible type (nested models
against nested objects, Literal against enum, tuple/list against array, dict against object),
the same required fields, the same defaults where the schema has one, and the same bounds
(length, items, properties, minimum/maximum). Not compared: patterns and CEL rules (different
languages; the admission tests in tests/integration exercise those) and the inside of fields
the models keep as free-form dicts (status.versions, status.rotation, status.rollback).
The packaged copy is compared with crds/ by test_crds_packaged.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
import yaml
from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from kustos.models.rotation_spec import RotationSpec
from kustos.models.spec import ManagedSecretSpec
from kustos.models.status import ManagedSecretStatus

CRD_FILE = Path(__file__).resolve().parents[2] / "operator/kustos/crds/managedsecret.yaml"

#: Fields a model keeps loose because another model validates them (the schema is compared
#: with that model instead).
DELEGATED: dict[tuple[type[BaseModel], str], Any] = {
    (ManagedSecretSpec, "rotation"): RotationSpec | None,
}
#: Schema properties no model owns: Kopf's own bookkeeping.
NOT_MODELLED = {"status.kopf"}

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
#: pydantic length constraint -> schema keyword, by schema type.
_LENGTHS = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}


def schema_of(part: str) -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    found: dict[str, Any] = root["properties"][part]
    return found


def _optional(annotation: Any) -> list[Any]:
    """The members of a union, None left out (the schema says optional by `required`)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def compare_type(annotation: Any, schema: dict[str, Any], path: str) -> list[str]:
    members = _optional(annotation)
    if len(members) > 1:  # e.g. resourcePolicy: an object, or the same as a JSON string
        tries = [compare_type(m, schema, path) for m in members]
        return [] if any(not t for t in tries) else [p for t in tries for p in t]
    (tp,) = members
    kind = schema.get("type")
    if tp is Any:
        return []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if kind != "object":
            return [f"{path}: {tp.__name__} in the model, {kind} in the CRD"]
        return compare_model(tp, schema, path)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        if kind != "string" or set(schema.get("enum", ())) != set(args):
            return [
                f"{path}: one of {sorted(args)} in the model, "
                f"{kind} {schema.get('enum')} in the CRD"
            ]
        return []
    if origin in (tuple, list):
        if kind != "array":
            return [f"{path}: an array in the model, {kind} in the CRD"]
        return compare_type(args[0], schema.get("items", {}), f"{path}[]")
    if origin is dict:
        if kind != "object":
            return [f"{path}: an object in the model, {kind} in the CRD"]
        if args[1] is Any:
            return []
        if "additionalProperties" not in schema:
            return [
                f"{path}: a map of {args[1].__name__} in the model, no "
                "additionalProperties in the CRD"
            ]
        return compare_type(args[1], schema["additionalProperties"], f"{path}.*")
    if tp in _SCALARS:
        if kind != _SCALARS[tp]:
            return [f"{path}: {_SCALARS[tp]} in the model, {kind} in the CRD"]
        return []
    return [f"{path}: the test does not know the model's type {tp!r}"]


def _bounds(info: FieldInfo, kind: str | None) -> dict[str, float]:
    low, high = _LENGTHS.get(kind or "", ("", ""))
    found: dict[str, float] = {}
    for item in info.metadata:
        if isinstance(item, at.MinLen) and low:
            found[low] = item.min_length
        elif isinstance(item, at.MaxLen) and high:
            found[high] = item.max_length
        # annotated_types types each bound as a comparable (SupportsGe...), not a number
        elif isinstance(item, at.Ge):
            found["minimum"] = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, at.Gt):
            found["exclusiveMinimum"] = float(item.gt)  # type: ignore[arg-type]
        elif isinstance(item, at.Le):
            found["maximum"] = float(item.le)  # type: ignore[arg-type]
    return found


def _schema_bounds(schema: dict[str, Any]) -> dict[str, float]:
    keys = (
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
    )
    found = {k: float(schema[k]) for k in keys if k in schema}
    if schema.get("exclusiveMinimum") is True:
        found["exclusiveMinimum"] = found.pop("minimum")
    return found


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def compare_model(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    props: dict[str, Any] = schema.get("properties", {})
    fields = {info.alias or name: (name, info) for name, info in model.model_fields.items()}
    for key in sorted(set(props) - set(fields)):
        if f"{path}.{key}" not in NOT_MODELLED:
            problems.append(f"{path}.{key}: in the CRD, not in {model.__name__}")
    for key in sorted(set(fields) - set(props)):
        problems.append(f"{path}.{key}: in {model.__name__}, not in the CRD")
    required = set(schema.get("required", ()))
    for key in sorted(set(fields) & set(props)):
        name, info = fields[key]
        sub, where = props[key], f"{path}.{key}"
        problems += compare_type(DELEGATED.get((model, name), info.annotation), sub, where)
        if info.is_required() != (key in required):
            problems.append(
                f"{where}: required in the {'model' if info.is_required() else 'CRD'} only"
            )
        if "default" in sub:
            default = info.get_default(call_default_factory=True)
            if default is PydanticUndefined or _plain(default) != sub["default"]:
                problems.append(
                    f"{where}: default {sub['default']!r} in the CRD, {default!r} in the model"
                )
        if (model, name) not in DELEGATED:
            mine, theirs = _bounds(info, sub.get("type")), _schema_bounds(sub)
            if mine != theirs:
                problems.append(f"{where}: bounds {mine} in the model, {theirs} in the CRD")
    return problems


@pytest.mark.parametrize(
    ("part", "model"), [("spec", ManagedSecretSpec), ("status", ManagedSecretStatus)]
)
def test_the_crd_and_the_model_have_the_same_fields_types_and_bounds(
    part: str, model: type[BaseModel]
) -> None:
    assert compare_model(model, schema_of(part), part) == []


# -- the comparison can fail ---------------------------------------------------------------
class _Probe(BaseModel):
    name: str = Field(max_length=10)
    count: int = Field(3, ge=1)
    mode: Literal["a", "b"] = "a"
    keys: tuple[str, ...] = ("x",)


_PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "count": {"type": "integer", "minimum": 1, "default": 3},
        "mode": {"type": "string", "enum": ["a", "b"]},
        "keys": {"type": "array", "items": {"type": "string"}, "default": ["x"]},
    },
}


def test_a_matching_pair_passes() -> None:
    assert compare_model(_Probe, _PROBE_SCHEMA, "p") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["properties"].pop("mode"), "p.mode: in _Probe, not in the CRD"),
        (
            lambda s: s["properties"].update(extra={"type": "string"}),
            "p.extra: in the CRD, not in _Probe",
        ),
        (
            lambda s: s["properties"]["count"].update(type="string"),
            "p.count: integer in the model, string in the CRD",
        ),
        (lambda s: s["properties"]["mode"].update(enum=["a", "b", "c"]), "p.mode: one of"),
        (
            lambda s: s["properties"]["keys"]["items"].update(type="integer"),
            "p.keys[]: string in the model, integer in the CRD",
        ),
        (lambda s: s.update(required=[]), "p.name: required in the model only"),
        (lambda s: s["properties"]["count"].update(default=4), "p.count: default 4 in the CRD"),
        (lambda s: s["properties"]["name"].update(maxLength=11), "p.name: bounds"),
        (lambda s: s["properties"]["count"].pop("minimum"), "p.count: bounds"),
    ],
)
def test_each_kind_of_drift_is_caught(change: Any, expected: str) -> None:
    schema = yaml.safe_load(yaml.safe_dump(_PROBE_SCHEMA))  # a deep copy
    change(schema)
    problems = compare_model(_Probe, schema, "p")
    assert any(p.startswith(expected) for p in problems), problems
