"""Contract keywords -> per-field plans of vectorizable constraints.

Each property of the root schema becomes a ``FieldPlan``: the conjunction of its constraints, gathered
through ``$ref``, ``allOf`` and the nullable pattern ``anyOf``/``oneOf`` ``[S, {"type": "null"}]``
(whose constraints are marked ``null_ok``: a null passes them). A property that uses any other keyword is
a *fallback* field: ``jsonschema`` evaluates its whole subschema, once per distinct value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.contracts.resolve import SchemaStore, escape

VECTOR_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
    }
)  # fmt: skip
ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples", "deprecated",
        "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
    }
)  # fmt: skip

# JSON value kinds: "integer" and "fraction" are the two halves of "number".
ALL_ATOMS = frozenset({"null", "boolean", "object", "array", "string", "integer", "fraction"})
TYPE_ATOMS = {
    "null": {"null"}, "boolean": {"boolean"}, "object": {"object"}, "array": {"array"}, "string": {"string"},
    "integer": {"integer"}, "number": {"integer", "fraction"},
}  # fmt: skip


def value_atom(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "fraction"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass(frozen=True)
class Constraint:
    keyword: str
    value: Any
    file: str
    pointer: str  # of the keyword
    null_ok: bool = False  # under a nullable anyOf/oneOf: a null passes


@dataclass
class FieldPlan:
    name: str
    constraints: list[Constraint] = field(default_factory=list)
    fallback: str | None = None  # why jsonschema evaluates this field (None: fully vectorized)
    atoms: frozenset[str] = ALL_ATOMS  # value kinds the field admits
    annotations: dict[str, Any] = field(default_factory=dict)


def _is_null_branch(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and node.get("type") == "null"
        and not (set(node) & (VECTOR_KEYWORDS - {"type"}))
    )


def _rejects_null(node: Any, store: SchemaStore, base: str, file: str, pointer: str) -> bool:
    return "null" not in infer_atoms(node, store, base, file, pointer)


def infer_atoms(
    node: Any, store: SchemaStore, base: str, file: str, pointer: str, depth: int = 0
) -> frozenset[str]:
    """The JSON value kinds ``node`` can accept (an over-approximation for applicators)."""
    if node is True or depth > 50:
        return ALL_ATOMS
    if node is False:
        return frozenset()
    atoms = set(ALL_ATOMS)
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        atoms &= set().union(*(TYPE_ATOMS[t] for t in types))
    if "enum" in node:
        atoms &= {value_atom(v) for v in node["enum"]}
    if "const" in node:
        atoms &= {value_atom(node["const"])}
    if "$ref" in node:
        doc, frag, target = store.resolve(base, node["$ref"], file=file, pointer=pointer + "/$ref")
        atoms &= infer_atoms(target, store, doc.uri, store.display(doc.path), frag, depth + 1)
    for i, sub in enumerate(node.get("allOf", [])):
        atoms &= infer_atoms(sub, store, base, file, f"{pointer}/allOf/{i}", depth + 1)
    for kw in ("anyOf", "oneOf"):
        if kw in node:
            union: set[str] = set()
            for i, sub in enumerate(node[kw]):
                union |= infer_atoms(sub, store, base, file, f"{pointer}/{kw}/{i}", depth + 1)
            atoms &= union
    return frozenset(atoms)


class _Collector:
    def __init__(self, plan: FieldPlan, store: SchemaStore) -> None:
        self.plan = plan
        self.store = store

    def fallback(self, why: str) -> None:
        if self.plan.fallback is None:
            self.plan.fallback = why

    def collect(self, node: Any, base: str, file: str, pointer: str, null_ok: bool, depth: int = 0) -> None:
        if node is True:
            return
        if node is False or depth > 50:
            self.fallback(f"{file}#{pointer}: boolean false or deep $ref chain")
            return
        for key, value in node.items():
            if key.startswith("x-"):
                self.plan.annotations.setdefault(key, value)
                if key == "x-check":
                    self.plan.constraints.append(
                        Constraint("x-check", value, file, f"{pointer}/{key}", null_ok)
                    )
            elif key in VECTOR_KEYWORDS:
                self.plan.constraints.append(Constraint(key, value, file, f"{pointer}/{key}", null_ok))
            elif key in ANNOTATIONS:
                if key == "description":
                    self.plan.annotations.setdefault("description", value)
            elif key == "$ref":
                doc, frag, target = self.store.resolve(base, value, file=file, pointer=f"{pointer}/$ref")
                self.collect(target, doc.uri, self.store.display(doc.path), frag, null_ok, depth + 1)
            elif key == "allOf":
                for i, sub in enumerate(value):
                    self.collect(sub, base, file, f"{pointer}/allOf/{i}", null_ok, depth + 1)
            elif key in ("anyOf", "oneOf") and len(value) == 2 and any(_is_null_branch(b) for b in value):
                i = 0 if _is_null_branch(value[1]) else 1
                other = value[i]
                if key == "oneOf" and not _rejects_null(
                    other, self.store, base, file, f"{pointer}/{key}/{i}"
                ):
                    self.fallback(f"{file}#{pointer}/oneOf")
                    continue
                self.collect(other, base, file, f"{pointer}/{key}/{i}", True, depth + 1)
            else:
                self.fallback(f"{file}#{pointer}/{escape(key)}")


def plan_field(name: str, node: Any, store: SchemaStore, base: str, file: str) -> FieldPlan:
    pointer = f"/properties/{escape(name)}"
    plan = FieldPlan(name)
    if isinstance(node, dict):
        for key in (
            "x-label",
            "x-personal",
            "x-unit",
            "x-check",
            "x-date-field",
            "x-birth-date-field",
            "x-coarse",
            "x-geometry",
            "description",
        ):
            if key in node:
                plan.annotations[key] = node[key]
    _Collector(plan, store).collect(node, base, file, pointer, False)
    plan.atoms = infer_atoms(node, store, base, file, pointer)
    return plan
