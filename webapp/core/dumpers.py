"""Dumpers generated once per output schema: schema.dump's output at a fraction of its cost.

marshmallow's dump walks every field generically on every call (the field's get_value,
its serialize, its _serialize, per attribute). For the output schemas of this API the
work is fixed by the schema, so it is compiled once into one Python function that
builds the dict directly. The schema stays the contract: the generated function is
derived from its declared fields, anything it cannot inline (an unknown field class,
``many`` lists of other kinds, dump hooks, a mapping instead of an object) goes through
marshmallow itself, and tests/core/test_dumpers.py compares the two on every
resource's output schema over real rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from marshmallow import Schema, fields

from webapp.core.fields import UtcDateTime

Dump = Callable[[Any], dict[str, Any]]

_cache: dict[tuple[int, tuple[str, ...] | None], tuple[Schema, Dump]] = {}


def _utc(value: Any) -> str | None:
    # UtcDateTime._serialize, inlined: RFC 3339 in UTC with microseconds.
    if value is None:
        return None
    tzinfo = value.tzinfo
    if tzinfo is not UTC:  # psycopg2 hands UTC timestamps over already in UTC
        value = value.replace(tzinfo=UTC) if tzinfo is None else value.astimezone(UTC)
    return str(value.isoformat(timespec="microseconds"))


def _exact(field: fields.Field[Any], kind: type) -> bool:
    return type(field) is kind


def _has_hooks(schema: Schema) -> bool:
    hooks = getattr(schema, "_hooks", {})
    return any(hooks.get(name) for name in ("pre_dump", "post_dump"))


def _reader(obj: str, labels: Sequence[str] | None) -> Callable[[str], str | None]:
    """How generated code reads a value: ``obj.name`` of an object, or ``obj[i]`` of a row
    whose labels are known (a Row's attribute access costs ~15x its index); None when a
    row has no such column."""
    if labels is None:
        return lambda name: f"{obj}.{name}"
    position = {label: index for index, label in enumerate(labels)}
    return lambda name: f"{obj}[{position[name]}]" if name in position else None


def _entries(
    schema: Schema, read: Callable[[str], str | None], prefix: str, namespace: dict[str, Any], indent: str
) -> list[str] | None:
    """Statements that fill ``body`` from ``obj``; None when a field cannot be inlined.

    With a ``prefix``, attributes are read flat: the fields of a nested schema come from
    ``<prefix><attribute>`` of the same row (a joined SELECT labels them that way).
    """
    entries: list[str] = []
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        key = field.data_key or name
        if not attribute.isidentifier() or field.dump_default is not fields.missing_:  # type: ignore[attr-defined]
            return None
        value = read(f"{prefix}{attribute}")
        if value is None and not (isinstance(field, fields.Nested) and namespace["_flat"]):
            return None  # a row without this column (a nested object is read from its own)
        if _exact(field, fields.Integer) and not field.as_string:  # type: ignore[attr-defined]
            expression = f"(None if (v := {value}) is None else int(v))"
        elif _exact(field, fields.String):
            expression = f"(None if (v := {value}) is None else str(v))"
        elif _exact(field, fields.Boolean) and not field.truthy and not field.falsy:  # type: ignore[attr-defined]
            expression = f"(None if (v := {value}) is None else bool(v))"
        elif _exact(field, UtcDateTime):
            expression = f"_utc({value})"
        elif isinstance(field, fields.Nested) and not field.many and prefix == "" and namespace["_flat"]:
            flat_nested = _flat_nested_entries(field.schema, attribute, key, read, namespace, indent=indent)
            if flat_nested is None:
                return None
            entries.extend(flat_nested)
            continue
        elif isinstance(field, fields.Nested) and not field.many and not namespace["_flat"]:
            nested = f"_nested_{name}"
            namespace[nested] = dumper_for(field.schema)
            expression = f"(None if (v := {value}) is None else {nested}(v))"
        elif isinstance(field, fields.Nested) or prefix:
            # A collection (or an object inside a nested one) has no flat form in one row.
            return None
        else:
            entries.append(
                _through_the_field(
                    field, name, attribute=attribute, key=key, value=value, namespace=namespace, indent=indent
                )
            )
            continue
        entries.append(f"{indent}body[{key!r}] = {expression}")
    return entries


def _through_the_field(
    field: fields.Field[Any],
    name: str,
    *,
    attribute: str,
    key: str,
    value: str | None,
    namespace: dict[str, Any],
    indent: str,
) -> str:
    """The statement that has marshmallow's field serialize a value no inline form covers."""
    serialize = f"_serialize_{name}"
    if value is not None and namespace["_flat"]:
        # A row read by position: the value is there (a column, maybe NULL), and
        # marshmallow's attribute lookup would not find it on a plain tuple.
        namespace[serialize] = field._serialize
        return f"{indent}body[{key!r}] = {serialize}({value}, {attribute!r}, obj)"
    namespace[serialize] = field.serialize
    # marshmallow leaves a key out when the attribute is missing: keep that.
    namespace["_missing"] = fields.missing_  # type: ignore[attr-defined]
    return f"{indent}if (x := {serialize}({attribute!r}, obj)) is not _missing: body[{key!r}] = x"


def _flat_nested_entries(
    schema: Schema,
    attribute: str,
    key: str,
    read: Callable[[str], str | None],
    namespace: dict[str, Any],
    *,
    indent: str,
) -> list[str] | None:
    """Statements that fill ``body[key]`` from a row's ``<attribute>_*`` columns."""
    nested_id = read(f"{attribute}_id")
    if _has_hooks(schema) or "id" not in schema.dump_fields or nested_id is None:
        return None
    inner = _entries(schema, read, f"{attribute}_", namespace, indent + "    ")
    if inner is None:
        return None
    # The nested object is absent when its id is (a LEFT JOIN that found nothing).
    return [
        f"{indent}if {nested_id} is None:",
        f"{indent}    body[{key!r}] = None",
        f"{indent}else:",
        f"{indent}    outer, body = body, {{}}",
        *inner,
        f"{indent}    outer[{key!r}], body = body, outer",
    ]


def compile_dumper(schema: Schema, *, labels: Sequence[str] | None = None) -> Dump:
    """One function ``obj -> dict`` equal to ``schema.dump(obj)`` for a single object.

    ``labels``: for rows of a SELECT with these column labels, in this order, rather than
    objects: values are read by position, and a nested field ``author`` from the row's
    ``author_id``, ``author_full_name``... (core/repository.py ReadRepository labels
    joined columns so). Raises ValueError for a schema it cannot compile that way: a row
    cannot go through schema.dump instead.
    """
    flat = labels is not None
    namespace: dict[str, Any] = {"_utc": _utc, "Mapping": Mapping, "_schema_dump": schema.dump, "_flat": flat}
    read = _reader("obj", labels)
    entries = None if schema.many or _has_hooks(schema) else _entries(schema, read, "", namespace, "    ")
    if entries is None:
        if flat:
            raise ValueError(f"{type(schema).__name__} cannot be dumped from rows of {tuple(labels or ())}")
        return schema.dump
    head = [] if flat else ["    if isinstance(obj, Mapping):", "        return _schema_dump(obj)"]
    source = "\n".join(["def dump(obj):", *head, "    body = {}", *entries, "    return body"])
    exec(compile(source, f"<dumper {type(schema).__name__}>", "exec"), namespace)
    dump: Dump = namespace["dump"]
    return dump


def dumper_for(schema: Schema, *, labels: Sequence[str] | None = None) -> Dump:
    """The generated dumper of this schema instance (for rows: their ``labels``), compiled on first use."""
    cache_key = (id(schema), None if labels is None else tuple(labels))
    entry = _cache.get(cache_key)
    if entry is None or entry[0] is not schema:
        entry = (schema, compile_dumper(schema, labels=labels))
        _cache[cache_key] = entry
    return entry[1]


def dump_many(
    schema: Schema, *, labels: Sequence[str] | None = None
) -> Callable[[list[Any]], list[dict[str, Any]]]:
    """A list dumper for a page's items."""
    dump = dumper_for(schema, labels=labels)
    return lambda items: [dump(item) for item in items]
