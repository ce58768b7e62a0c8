"""A compiled dump (core/dumpers.py) answers exactly what marshmallow's ``schema.dump``
answers, for every output schema the API declares and for fields of every other kind."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields

from webapp.core.dumpers import compile_dump
from webapp.core.fields import UtcDateTime
from webapp.core.operations import declared_operation

NOW = datetime(2026, 12, 1, 12, 30, 45, 123456, tzinfo=UTC)
# Values a column of each kind may hold, as drivers hand them over (SQLite: naive times).
SAMPLES: dict[type[fields.Field[Any]], list[Any]] = {
    fields.Integer: [0, 7, None],
    fields.String: ["", "Zoë Ødegård ☃", None],
    fields.Boolean: [True, False, None],
    UtcDateTime: [
        NOW,
        NOW.replace(microsecond=0),
        NOW.astimezone(timezone(timedelta(hours=-5))),
        NOW.replace(tzinfo=None),
        None,
    ],
}


def _output_schemas(app: Flask) -> list[Schema]:
    """Every schema an operation answers with, and the schemas nested in them."""
    found: list[Schema] = []

    def add(schema: Schema) -> None:
        if any(type(known) is type(schema) for known in found):
            return
        found.append(schema)
        for field in schema.dump_fields.values():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, fields.Nested):
                add(inner.schema)

    for view in app.view_functions.values():
        declared = declared_operation(view)
        if declared is not None and declared.response is not None:
            add(declared.response)
    return found


def _objects(schema: Schema, depth: int = 0) -> list[dict[str, Any]]:
    """Attribute values for objects of ``schema``: each field through each of its samples."""
    columns: dict[str, list[Any]] = {}
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        if isinstance(field, fields.Nested) and not field.many and depth < 2:
            columns[attribute] = [
                None,
                *(SimpleNamespace(**values) for values in _objects(field.schema, depth + 1)),
            ]
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            columns[attribute] = [[]]  # envelopes: their items are compared one by one
        else:
            columns[attribute] = SAMPLES.get(type(field), [None])
    width = max(len(values) for values in columns.values())
    return [
        {attribute: values[index % len(values)] for attribute, values in columns.items()}
        for index in range(width)
    ]


def test_every_declared_output_schema_compiles_to_its_own_dump(app: Flask) -> None:
    schemas = _output_schemas(app)
    assert len(schemas) >= 5  # users, posts and their authors, comments, tokens...
    for schema in schemas:
        dump = compile_dump(schema)
        for values in _objects(schema):
            for obj in (SimpleNamespace(**values), values):  # an object, or a row read by key
                expected = schema.dump(obj)
                assert dump(obj) == expected, (type(schema).__name__, values)
                assert list(dump(obj)) == list(expected)  # the same key order too


def test_fields_of_other_kinds_go_through_their_own_serialize() -> None:
    class Everything(Schema):
        number = fields.Integer(as_string=True)
        ratio = fields.Float()
        renamed = fields.String(attribute="other", data_key="label")
        shout = fields.Method("upper")
        tags = fields.List(fields.String())
        defaulted = fields.String(dump_default="none")
        dotted = fields.String(attribute="author.name")

        def upper(self, obj: Any) -> str:
            return str(obj.other).upper()

    schema = Everything()
    objects = [
        SimpleNamespace(
            number=1, ratio=0.5, other="a", tags=["x"], defaulted="d", author=SimpleNamespace(name="n")
        ),
        SimpleNamespace(number=None, ratio=None, other="", tags=[], author=SimpleNamespace(name=None)),
    ]
    dump = compile_dump(schema)
    for obj in objects:
        assert dump(obj) == schema.dump(obj)


def test_missing_attributes_and_keys_are_left_out_as_dump_leaves_them() -> None:
    schema = Schema.from_dict({"id": fields.Integer(), "name": fields.String(), "at": UtcDateTime()})()
    dump = compile_dump(schema)

    for obj in (SimpleNamespace(id=1), {"id": 1}, SimpleNamespace(), {}):
        assert dump(obj) == schema.dump(obj)


def test_values_of_other_types_are_formatted_as_their_field_formats_them() -> None:
    schema = Schema.from_dict({"n": fields.Integer(), "s": fields.String(), "b": fields.Boolean()})()
    dump = compile_dump(schema)

    for n, s, b in itertools.product([3.0, "4", True], [b"bytes", 5, 1.5], [1, "x", 0]):
        assert dump({"n": n, "s": s, "b": b}) == schema.dump({"n": n, "s": s, "b": b})


@pytest.mark.parametrize(
    "schema",
    [
        Schema.from_dict({"id": fields.Integer()})(many=True),
        type(
            "OwnLookup",
            (Schema,),
            {"get_attribute": lambda self, obj, attr, default: 42, "id": fields.Integer()},
        )(),
    ],
    ids=["many", "own-get-attribute"],
)
def test_a_schema_that_reads_values_its_own_way_is_dumped_by_marshmallow(schema: Schema) -> None:
    obj = [SimpleNamespace(id=1)] if schema.many else SimpleNamespace(id=1)

    assert compile_dump(schema)(obj) == schema.dump(obj)
