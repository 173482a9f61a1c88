"""Loading a contract: read, check every keyword, resolve ``$ref``s, derive fields and the Arrow schema.

Refused with ``ContractError(file, pointer)``: a file that is not JSON or not a valid 2020-12 schema, a
``$schema`` other than 2020-12, a ``$ref`` that does not resolve inside ``schemas/``, ``$dynamicRef``,
``$dynamicAnchor``, ``$anchor``, ``$recursiveRef``, ``$vocabulary``, a nested ``$id``, an unknown keyword
(a typo would otherwise be ignored silently), a ``format`` the format checker does not know, a pattern
Python cannot compile, an unknown ``x-check``, a malformed ``x-`` annotation, a root that is not an object
schema with properties, and a property that cannot be one Arrow column (no type, or several JSON types
besides null). Keywords that are valid but not vectorized are accepted: ``jsonschema`` evaluates them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from hub.contracts.checks import get_check
from hub.contracts.compile import ANNOTATIONS, VECTOR_KEYWORDS, plan_field
from hub.contracts.model import FORMAT_ARROW, KIND_ARROW, PERSONAL_CLASSES, Contract, FieldInfo
from hub.contracts.resolve import SchemaStore, escape
from hub.errors import ContractError

SCHEMA_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_ONE = (
    "not", "if", "then", "else", "items", "contains", "additionalProperties", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "contentSchema",
)  # fmt: skip
OTHER = (
    "$ref", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties",
    "minProperties", "required", "dependentRequired",
)  # fmt: skip
KNOWN = frozenset(
    VECTOR_KEYWORDS | ANNOTATIONS | set(SCHEMA_MAP) | set(SCHEMA_LIST) | set(SCHEMA_ONE) | set(OTHER)
)
REFUSED = {
    "$dynamicRef": "the hub resolves references statically",
    "$dynamicAnchor": "the hub resolves references statically",
    "$recursiveRef": "draft 2019-09 keyword",
    "$recursiveAnchor": "draft 2019-09 keyword",
    "$anchor": "refer by JSON pointer instead",
    "$vocabulary": "custom vocabularies are not supported",
}
ROOT_HANDLED = frozenset({"type", "properties", "required", "additionalProperties"} | ANNOTATIONS)
FORMATS = frozenset(Draft202012Validator.FORMAT_CHECKER.checkers)
REF_PATTERN = re.compile(r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*\.v[0-9]+$")


class _Walker:
    """Checks every keyword of a schema and of what its $refs reach."""

    def __init__(self, store: SchemaStore) -> None:
        self.store = store
        self.seen: set[tuple[str, str]] = set()

    def walk(self, node: Any, base: str, file: str, pointer: str, *, doc_root: bool = False) -> None:
        if (base, pointer) in self.seen or isinstance(node, bool):
            return
        self.seen.add((base, pointer))
        if not isinstance(node, dict):
            raise ContractError("a schema must be an object or a boolean", file=file, pointer=pointer)
        for key, value in node.items():
            at = f"{pointer}/{escape(key)}"
            if key.startswith("x-"):
                _check_annotation(key, value, file, at, root=pointer == "" and doc_root)
            elif key in REFUSED:
                raise ContractError(f"keyword {key} is not supported ({REFUSED[key]})", file=file, pointer=at)
            elif key not in KNOWN:
                raise ContractError(
                    f"unknown keyword {key!r} (a typo? custom ones start with x-)", file=file, pointer=at
                )
            elif key == "$id" and not (doc_root and pointer == ""):
                raise ContractError("a nested $id is not supported", file=file, pointer=at)
            elif key == "format" and value not in FORMATS:
                raise ContractError(f"format {value!r} is not known to the hub", file=file, pointer=at)
            elif key == "pattern":
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ContractError(f"pattern does not compile: {exc}", file=file, pointer=at) from None
            elif key == "$ref":
                doc, frag, target = self.store.resolve(base, value, file=file, pointer=at)
                self.walk(target, doc.uri, self.store.display(doc.path), frag, doc_root=True)
            elif key in SCHEMA_MAP:
                for name, sub in value.items():
                    self.walk(sub, base, file, f"{at}/{escape(name)}", doc_root=doc_root)
            elif key in SCHEMA_LIST:
                for i, sub in enumerate(value):
                    self.walk(sub, base, file, f"{at}/{i}", doc_root=doc_root)
            elif key in SCHEMA_ONE:
                self.walk(value, base, file, at, doc_root=doc_root)


def _check_annotation(key: str, value: Any, file: str, at: str, *, root: bool) -> None:
    def bad(msg: str) -> ContractError:
        return ContractError(f"{key}: {msg}", file=file, pointer=at)

    if key == "x-primary-key":
        if not root:
            raise bad("only allowed at the root of a contract")
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise bad("must be a non-empty list of property names")
    elif key == "x-personal" and value not in PERSONAL_CLASSES:
        raise bad(f"must be one of {', '.join(PERSONAL_CLASSES)}")
    elif key == "x-label" and not (
        isinstance(value, dict)
        and set(value) <= {"vi", "en"}
        and all(isinstance(v, str) for v in value.values())
    ):
        raise bad('must be {"vi": "...", "en": "..."}')
    elif key in ("x-unit", "x-date-field", "x-birth-date-field") and not isinstance(value, str):
        raise bad("must be a string")
    elif key == "x-check" and (not isinstance(value, str) or get_check(value) is None):
        raise bad(f"no check named {value!r} is registered")
    elif key == "x-coarse" and not isinstance(value, bool):
        raise bad("must be true or false")
    elif key == "x-geometry" and value != "wkt":
        raise bad('must be "wkt" (the field holds a WKT geometry)')


def _kind(atoms: frozenset[str], file: str, pointer: str) -> str:
    rest = set(atoms) - {"null"}
    kinds = {
        frozenset({"string"}): "string", frozenset({"integer"}): "integer", frozenset({"fraction"}): "number",
        frozenset({"integer", "fraction"}): "number", frozenset({"boolean"}): "boolean",
        frozenset({"object"}): "object", frozenset({"array"}): "array",
    }  # fmt: skip
    if frozenset(rest) in kinds:
        return kinds[frozenset(rest)]
    if len(rest) >= 6:
        raise ContractError(
            "the property has no type: say which JSON type it holds", file=file, pointer=pointer
        )
    if not rest:
        raise ContractError("the property admits no value but null", file=file, pointer=pointer)
    raise ContractError(
        f"the property admits several JSON types ({', '.join(sorted(rest))}); one column needs one type",
        file=file,
        pointer=pointer,
    )


def load_contract(ref: str, schemas_dir: Path) -> Contract:
    """Load ``schemas/<ref>.schema.json``; ``ref`` is ``<domain>/<dataset>.v<MAJOR>``."""
    schemas_dir = Path(schemas_dir)
    rel = f"{ref}.schema.json"
    path = schemas_dir / rel
    store = SchemaStore(schemas_dir)
    file = store.display(path)
    if not REF_PATTERN.match(ref):
        raise ContractError(f"contract reference {ref!r} is not <domain>/<dataset>.v<MAJOR>", file=file)
    doc = store.read(path)
    schema = doc.contents
    schema_id = schema.get("$id")
    if schema_id is not None:
        if not schema_id.endswith("/" + rel):
            raise ContractError(f"$id must end with /{rel}", file=file, pointer="/$id")
        store.prefix = schema_id[: -len(rel)]
        store.docs = {schema_id: doc}
        doc.uri = schema_id
    base = doc.uri
    _Walker(store).walk(schema, base, file, "", doc_root=True)

    types = schema.get("type")
    if types != "object" and types != ["object"]:
        raise ContractError('the root of a contract must have "type": "object"', file=file, pointer="/type")
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise ContractError(
            "the root of a contract must declare its properties", file=file, pointer="/properties"
        )
    required = set(schema.get("required", []))
    for i, name in enumerate(schema.get("required", [])):
        if name not in props:
            raise ContractError(
                f"required property {name!r} is not declared", file=file, pointer=f"/required/{i}"
            )
    fields: list[FieldInfo] = []
    plans = {}
    for name, node in props.items():
        pointer = f"/properties/{escape(name)}"
        plan = plan_field(name, node, store, base, file)
        kind = _kind(plan.atoms, file, pointer)
        fmt = next((c.value for c in plan.constraints if c.keyword == "format"), None)
        arrow_type = FORMAT_ARROW.get(fmt, KIND_ARROW[kind]) if kind == "string" and fmt else KIND_ARROW[kind]
        ann = plan.annotations
        for key in ("x-date-field", "x-birth-date-field"):
            if key in ann and ann[key] not in props:
                raise ContractError(f"{key}: no property {ann[key]!r}", file=file, pointer=f"{pointer}/{key}")
        label = ann.get("x-label") or {}
        description = ann.get("description")
        fields.append(
            FieldInfo(
                name=name,
                arrow_type=arrow_type,
                required=name in required,
                nullable="null" in plan.atoms or name not in required,
                json_type=kind,
                format=fmt,
                label_vi=label.get("vi"),
                label_en=label.get("en"),
                description=description,
                personal=ann.get("x-personal"),
                unit=ann.get("x-unit"),
                check=ann.get("x-check"),
                date_field=ann.get("x-date-field"),
                birth_date_field=ann.get("x-birth-date-field"),
                coarse=bool(ann.get("x-coarse", False)),
                geometry=ann.get("x-geometry"),
                pointer=pointer,
            )
        )
        plans[name] = plan
    pk = tuple(schema.get("x-primary-key", ()))
    for i, key in enumerate(pk):
        if key not in props:
            raise ContractError(
                f"x-primary-key: no property {key!r}", file=file, pointer=f"/x-primary-key/{i}"
            )
    additional = schema.get("additionalProperties", True)
    residual = [k for k in schema if not k.startswith("x-") and k not in ROOT_HANDLED]
    if not isinstance(additional, bool) or "patternProperties" in schema:
        residual.append("additionalProperties")
        additional = True
    contract = Contract(
        ref=ref,
        path=path,
        schema=schema,
        fields=fields,
        primary_key=pk,
        title=schema.get("title", ref),
        label=schema.get("x-label") or {"vi": schema.get("title", ref), "en": schema.get("title", ref)},
        base_uri=base,
    )
    contract.registry = store.registry()
    contract.plans = plans
    contract.residual = tuple(dict.fromkeys(residual))
    contract.additional_allowed = bool(additional)
    return contract
