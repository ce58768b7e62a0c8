"""Dumpers generated once per output schema: schema.dump's output at a fraction of its cost.

marshmallow's dump walks every field generically on every call (the field's get_value,
its serialize, its _serialize, per attribute). For the output schemas of this API the
work is fixed by the schema, so it is compiled once into one Python function that
builds the dict directly: of one object or row (``dumper_for``), or, in one loop, of a
list of them (``dump_many``: a page, or the 1,000 rows of a bulk INSERT ... RETURNING).
Rows are read by position when their labels are given, objects by attribute.

The schema stays the contract: the generated function is derived from its declared
fields, anything it cannot inline goes through marshmallow itself (a field of an
unknown class through that field; ``many`` lists of other kinds, dump hooks or a
mapping instead of an object through schema.dump), and tests/core/test_dumpers.py
compares the two on every resource's output schema over real rows.
"""

from __future__ import annotations

import keyword
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any, NamedTuple

from marshmallow import Schema, fields

from webapp.core.fields import UtcDateTime

Dump = Callable[[Any], dict[str, Any]]
DumpMany = Callable[[Sequence[Any]], list[dict[str, Any]]]

_cache: dict[tuple[int, tuple[str, ...] | None, bool], tuple[Schema, Callable[[Any], Any]]] = {}
_unset = object()


def _utc(value: Any) -> str | None:
    # UtcDateTime._serialize, inlined: RFC 3339 in UTC with microseconds.
    if value is None:
        return None
    tzinfo = value.tzinfo
    if tzinfo is not UTC:  # psycopg2 hands UTC timestamps over already in UTC
        value = value.replace(tzinfo=UTC) if tzinfo is None else value.astimezone(UTC)
    return str(value.isoformat(timespec="microseconds"))


def _ensure_text(value: Any) -> str:
    # marshmallow.utils.ensure_text_type, for what is not already a str.
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _has_hooks(schema: Schema) -> bool:
    hooks = getattr(schema, "_hooks", {})
    return any(hooks.get(name) for name in ("pre_dump", "post_dump"))


def _plain_name(attribute: str) -> bool:
    """Whether ``attribute`` can be written in generated code as ``obj.<attribute>`` and
    mean that attribute (not a keyword; unchanged by the NFKC that Python's parser applies)."""
    return (
        attribute.isidentifier()
        and not keyword.iskeyword(attribute)
        and unicodedata.normalize("NFKC", attribute) == attribute
    )


def _passes_through(field: fields.Field[Any]) -> bool:
    """Whether marshmallow dumps the field's value as it is (Boolean and Raw do)."""
    kind = type(field)
    return (
        kind.serialize is fields.Field.serialize
        and kind._serialize is fields.Field._serialize
        and field._CHECK_ATTRIBUTE
    )


def _reader(labels: Sequence[str] | None) -> Callable[[str], str | None]:
    """How generated code reads a value: ``obj.name`` of an object, or ``obj[i]`` of a row
    whose labels are known (a Row's attribute access costs ~15x its index, a driver's
    tuple has none); None when a row has no such column."""
    if labels is None:
        return lambda name: f"obj.{name}"
    position = {label: index for index, label in enumerate(labels)}
    return lambda name: f"obj[{position[name]}]" if name in position else None


def _helper(namespace: dict[str, Any], value: Any) -> str:
    """A name for ``value`` in the generated code's globals."""
    name = f"_helper_{len(namespace)}"
    namespace[name] = value
    return name


class _Entry(NamedTuple):
    key: str
    expression: str
    # marshmallow leaves the key out when the attribute is missing (the expression is
    # then _missing): only for objects, whose attributes may be absent.
    unless_missing: bool = False


def _inline(field: fields.Field[Any], value: str) -> str | None:
    """The expression that is ``field._serialize`` of ``value``, for the kinds it inlines.

    This is the one place a field kind is inlined, for objects and rows alike."""
    kind = type(field)
    if kind is fields.Integer and not field.as_string:  # type: ignore[attr-defined]
        return f"(v if type(v := {value}) is int or v is None else int(v))"
    if kind is fields.String:
        return f"(v if type(v := {value}) is str or v is None else _ensure_text(v))"
    if kind is UtcDateTime:
        # Equal datetimes are the same instant (drivers hand back UTC or fixed offsets),
        # so the same UTC text: a run of equal ones (a row's created_at and updated_at,
        # the 1,000 rows of one INSERT ... RETURNING) is formatted once. ``last`` and
        # ``text`` belong to the call (its first line sets them).
        # fold too: two wall times of one zone compare equal across a DST change.
        return (
            f"(text if (v := {value}) == last and (v is None or v.fold == last.fold) "
            "else (text := _utc(last := v)))"
        )
    if _passes_through(field):
        return value
    return None


def _entries(
    schema: Schema, read: Callable[[str], str | None], prefix: str, namespace: dict[str, Any], flat: bool
) -> list[_Entry] | None:
    """The entries of the dict of ``obj``, in dump order; None when a field cannot be inlined.

    ``flat``: ``obj`` is a row, and the fields of a nested schema come from its
    ``<prefix><attribute>`` columns (a joined SELECT labels them so).
    """
    entries: list[_Entry] = []
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        key = field.data_key or name
        if (
            not _plain_name(attribute)
            or field.dump_default is not fields.missing_  # type: ignore[attr-defined]
            or type(field).get_value is not fields.Field.get_value  # reads the value its own way
        ):
            return None
        value = read(f"{prefix}{attribute}")
        if isinstance(field, fields.Nested):
            if field.many or prefix:
                return None  # a collection (or an object inside a nested one) has no inline form
            if flat:
                expression = _flat_nested(field.schema, attribute, read, namespace)
            else:
                dump = _helper(namespace, dumper_for(field.schema))
                expression = f"(None if (v := {value}) is None else {dump}(v))"
            if expression is None:
                return None
            entries.append(_Entry(key, expression))
        elif value is None:
            return None  # a row without this column
        elif (expression := _inline(field, value)) is not None:
            entries.append(_Entry(key, expression))
        elif prefix:
            return None
        elif flat:
            # A row read by position: the value is there (a column, maybe NULL), and
            # marshmallow's attribute lookup would not find it on a plain tuple.
            serialize = _helper(namespace, field._serialize)
            entries.append(_Entry(key, f"{serialize}({value}, {attribute!r}, obj)"))
        else:
            serialize = _helper(namespace, field.serialize)
            entries.append(_Entry(key, f"{serialize}({attribute!r}, obj)", unless_missing=True))
    return entries


def _flat_nested(
    schema: Schema, attribute: str, read: Callable[[str], str | None], namespace: dict[str, Any]
) -> str | None:
    """The expression of a nested object read from a row's ``<attribute>_*`` columns."""
    nested_id = read(f"{attribute}_id")
    if _has_hooks(schema) or "id" not in schema.dump_fields or nested_id is None:
        return None
    inner = _entries(schema, read, f"{attribute}_", namespace, flat=True)
    if inner is None:
        return None
    # The nested object is absent when its id is (a LEFT JOIN that found nothing).
    return f"(None if {nested_id} is None else {_literal(inner, '        ')})"


def _literal(entries: Sequence[_Entry], indent: str) -> str:
    lines = [f"{indent}    {entry.key!r}: {entry.expression}," for entry in entries]
    return "\n".join(["{", *lines, f"{indent}}}"])


def _statement(entry: _Entry) -> str:
    if entry.unless_missing:
        return f"    if (x := {entry.expression}) is not _missing: body[{entry.key!r}] = x"
    return f"    body[{entry.key!r}] = {entry.expression}"


def _generate(schema: Schema, labels: Sequence[str] | None, many: bool) -> Callable[[Any], Any] | None:
    """The generated function of one object or row (``many``: of a list of them); None
    when the schema cannot be inlined."""
    if schema.many or _has_hooks(schema) or type(schema).get_attribute is not Schema.get_attribute:
        return None
    flat = labels is not None
    namespace: dict[str, Any] = {
        "_utc": _utc,
        "_ensure_text": _ensure_text,
        "_unset": _unset,
        "_missing": fields.missing_,  # type: ignore[attr-defined]
        "Mapping": Mapping,
        "_schema_dump": schema.dump,
    }
    entries = _entries(schema, _reader(labels), "", namespace, flat)
    if entries is None:
        return None
    head = ["    last = text = _unset"]
    if many:
        if any(entry.unless_missing for entry in entries):
            return None  # each object's dict needs statements: a loop over the single dumper
        item = _literal(entries, "    ")
        if not flat:
            item = f"_schema_dump(obj) if isinstance(obj, Mapping) else {item}"
        body = [f"    return [{item} for obj in items]"]
        source = "\n".join(["def dump(items):", *head, *body])
    else:
        if not flat:
            head += ["    if isinstance(obj, Mapping):", "        return _schema_dump(obj)"]
        if any(entry.unless_missing for entry in entries):
            body = ["    body = {}", *(_statement(entry) for entry in entries), "    return body"]
        else:
            body = [f"    return {_literal(entries, '    ')}"]
        source = "\n".join(["def dump(obj):", *head, *body])
    kind = "list dumper" if many else "dumper"
    exec(compile(source, f"<{kind} {type(schema).__name__}>", "exec"), namespace)
    generated: Callable[[Any], Any] = namespace["dump"]
    return generated


def _no_row_form(schema: Schema, labels: Sequence[str]) -> ValueError:
    return ValueError(f"{type(schema).__name__} cannot be dumped from rows of {tuple(labels)}")


def compile_dumper(schema: Schema, *, labels: Sequence[str] | None = None) -> Dump:
    """One function ``obj -> dict`` equal to ``schema.dump(obj)`` for a single object.

    ``labels``: for rows of a SELECT with these column labels, in this order, rather than
    objects: values are read by position, and a nested field ``author`` from the row's
    ``author_id``, ``author_full_name``... (core/repository.py ReadRepository labels
    joined columns so). Raises ValueError for a schema it cannot compile that way: a row
    cannot go through schema.dump instead.
    """
    generated = _generate(schema, labels, many=False)
    if generated is not None:
        return generated
    if labels is not None:
        raise _no_row_form(schema, labels)
    return schema.dump


def compile_many_dumper(schema: Schema, *, labels: Sequence[str] | None = None) -> DumpMany:
    """One function ``items -> [schema.dump(item) for item in items]``, as compile_dumper's
    for each item (the same ``labels``, the same ValueError), in one loop."""
    generated = _generate(schema, labels, many=True)
    if generated is not None:
        return generated
    dump = compile_dumper(schema, labels=labels)
    return lambda items: [dump(item) for item in items]


def _cached(schema: Schema, labels: Sequence[str] | None, many: bool) -> Callable[[Any], Any]:
    cache_key = (id(schema), None if labels is None else tuple(labels), many)
    entry = _cache.get(cache_key)
    if entry is None or entry[0] is not schema:
        compile_ = compile_many_dumper if many else compile_dumper
        entry = (schema, compile_(schema, labels=labels))
        _cache[cache_key] = entry
    return entry[1]


def dumper_for(schema: Schema, *, labels: Sequence[str] | None = None) -> Dump:
    """The generated dumper of this schema instance (for rows: their ``labels``), compiled on first use."""
    dump: Dump = _cached(schema, labels, many=False)
    return dump


def dump_many(schema: Schema, *, labels: Sequence[str] | None = None) -> DumpMany:
    """The generated list dumper of this schema instance (a page's items, a bulk answer's
    rows), compiled on first use."""
    dump: DumpMany = _cached(schema, labels, many=True)
    return dump
