"""JSON records to Arrow, column by column.

A page of JSON records becomes columns (one Python list per field) and then one ``pa.array`` per
column: no per-row dicts pass through ``pa.Table.from_pylist``. Nested values (objects, arrays) become
JSON text; a column whose values mix types (``1`` and ``"1"``) becomes text as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pyarrow as pa


def _json_text(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _to_array(values: list[Any], wanted: pa.DataType | None) -> pa.Array:
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array([_json_text(v) if v is None or isinstance(v, dict | list) else str(v) for v in values])
        return arr
    t = arr.type
    if pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        return pa.array([_json_text(v) for v in values], type=pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(values), type=wanted if wanted is not None else pa.string())
    return arr


def field_names(records: Sequence[dict[str, Any]], known: Iterable[str] = ()) -> list[str]:
    """The fields of ``records`` in first-seen order, after the ``known`` ones."""
    names = dict.fromkeys(known)
    if records:
        names.update(dict.fromkeys(records[0]))
        first = records[0].keys()
        extra = set().union(*(r.keys() for r in records if r.keys() != first)) - set(names)
        names.update(dict.fromkeys(sorted(extra)))
    return list(names)


def records_to_batch(
    records: Sequence[dict[str, Any]],
    names: Sequence[str] | None = None,
    schema: pa.Schema | None = None,
    extra: dict[str, pa.Array] | None = None,
) -> pa.RecordBatch:
    """One record batch from JSON records; ``schema`` (the contract's) types all-null columns only."""
    names = list(names) if names is not None else field_names(records)
    arrays: list[pa.Array] = []
    for name in names:
        values = [r.get(name) for r in records]
        wanted = schema.field(name).type if schema is not None and name in schema.names else None
        arrays.append(_to_array(values, wanted))
    for name, arr in (extra or {}).items():
        names.append(name)
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def dig(document: Any, path: str | None) -> Any:
    """The value at a dotted ``path`` (``data.items``) of a JSON document; None if absent."""
    if not path:
        return document
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
