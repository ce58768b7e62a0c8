"""``schema.dump`` compiled once per output schema, through marshmallow's public API.

marshmallow's dump walks every field generically on every call; for a page of posts with
their authors that walk is most of the request (bench/README.md). ``compile_dump`` reads
the schema once (``dump_fields``, each field's ``attribute``, ``data_key`` and class) and
returns a function that builds the same dict: a value of a kind below is passed through
or formatted as its field formats it, a nested schema is compiled the same way, any other
field goes through its own public ``serialize``. tests/core/test_dumpers.py holds the
compiled function equal to ``schema.dump`` for every output schema the API declares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import Schema, fields, missing

from webapp.core.fields import UtcDateTime, utc_text

Dump = Callable[[Any], dict[str, Any]]
# How one field's value is made from the object: (key in the dict, attribute, format).
_Step = tuple[str, str, Callable[[Any], Any]]


def _as_is(value: Any) -> Any:
    return value


def _integer(value: Any) -> Any:
    return value if type(value) is int or value is None else int(value)


def _string(value: Any) -> Any:
    if type(value) is str or value is None:
        return value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _nested(dump: Dump) -> Callable[[Any], Any]:
    return lambda value: None if value is None else dump(value)


def _format(field: fields.Field[Any]) -> Callable[[Any], Any] | None:
    """How the field formats a value it has read, for the kinds whose formatting is known."""
    kind = type(field)
    if kind is fields.Integer and not field.as_string:  # type: ignore[attr-defined]
        return _integer
    if kind is fields.String:
        return _string
    if kind is fields.Boolean:
        return _as_is
    if kind is UtcDateTime:
        return utc_text
    if kind is fields.Nested and not field.many:  # type: ignore[attr-defined]
        return _nested(compile_dump(field.schema))  # type: ignore[attr-defined]
    return None


def compile_dump(schema: Schema) -> Dump:
    """A function equal to ``schema.dump(obj)`` for one object (attributes) or mapping (keys)."""
    if schema.many or type(schema).get_attribute is not Schema.get_attribute:
        return schema.dump
    steps: list[_Step] = []
    for name, field in schema.dump_fields.items():
        key = field.data_key or name
        attribute = field.attribute or name
        formatter = _format(field) if field.dump_default is missing and "." not in attribute else None
        if formatter is None:
            # Its own reading and formatting: missing values are left out, as dump does.
            def through_field(obj: Any, field: fields.Field[Any] = field, name: str = name) -> Any:
                return field.serialize(name, obj, accessor=schema.get_attribute)

            steps.append((key, "", through_field))
        else:
            steps.append((key, attribute, formatter))

    def dump(obj: Any) -> dict[str, Any]:
        by_key = isinstance(obj, Mapping)
        body: dict[str, Any] = {}
        for key, attribute, formatter in steps:
            if not attribute:
                value = formatter(obj)
            else:
                try:
                    value = obj[attribute] if by_key else getattr(obj, attribute)
                except (KeyError, AttributeError):
                    continue  # missing: dump leaves the key out
                value = formatter(value)
            if value is not missing:
                body[key] = value
        return body

    return dump
