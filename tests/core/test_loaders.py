"""Generated loaders (core/loaders.py) answer exactly what schema.load answers, errors included."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from webapp.core.loaders import Declined, compile_acceptor, compile_loader, loader_for
from webapp.core.operations import declared_operation
from webapp.resources.users.schemas import UserBulkCreateSchema, UserCreateSchema

BULK = UserBulkCreateSchema()
VALID_ITEM = {"email": "  Ada@Example.COM ", "full_name": "Ada Lovelace", "password": "correct horse"}


def outcome(load: Any, data: Any) -> tuple[str, Any]:
    try:
        return "loaded", load(data)
    except ValidationError as error:
        return "invalid", error.messages


def marshmallow(schema: Schema) -> Any:
    return lambda data: Schema.load(schema, data)


def body_schemas(app: Flask) -> list[Schema]:
    declared = (declared_operation(view) for view in app.view_functions.values())
    return [operation.body for operation in declared if operation is not None and operation.body is not None]


def test_every_request_body_schema_loads_its_example_as_marshmallow_does(app: Flask) -> None:
    examples = {
        id(operation.body): operation.request_example
        for operation in (declared_operation(view) for view in app.view_functions.values())
        if operation is not None and operation.body is not None and operation.request_example is not None
    }
    for schema in body_schemas(app):
        if id(schema) in examples:
            assert outcome(compile_loader(schema), examples[id(schema)]) == outcome(
                marshmallow(schema), examples[id(schema)]
            )


def test_a_valid_bulk_body_is_loaded_without_marshmallow() -> None:
    accept = compile_acceptor(BULK)
    body = {"items": [VALID_ITEM, {**VALID_ITEM, "email": "grace@example.com"}]}

    assert accept is not None
    assert accept(body) == Schema.load(BULK, body)
    assert accept(body)["items"][0]["email"] == "ada@example.com"  # trimmed, lower-cased
    assert list(accept(body)["items"][0]) == list(Schema.load(BULK, body)["items"][0])


def test_the_bulk_schema_loads_through_its_generated_loader() -> None:
    assert BULK.load({"items": [VALID_ITEM]}) == Schema.load(BULK, {"items": [VALID_ITEM]})
    assert loader_for(BULK) is loader_for(BULK)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": []},
        {"items": None},
        {"items": "not a list"},
        {"items": [VALID_ITEM] * 1001},
        {"items": [VALID_ITEM], "extra": 1},
        {"items": [None]},
        {"items": [[]]},
        {"items": [{**VALID_ITEM, "email": "bad"}]},
        {"items": [{**VALID_ITEM, "email": 7}, {**VALID_ITEM, "full_name": ""}]},
        {
            "items": [
                {**VALID_ITEM, "full_name": "\u202eevil"},
                VALID_ITEM,
                {**VALID_ITEM, "password": "short"},
            ]
        },
        {"items": [{**VALID_ITEM, "password": "nul\x00nul!!"}]},
        {"items": [{**VALID_ITEM, "full_name": "lone \ud800"}]},
        {"items": [{**VALID_ITEM, "email": "a" * 330 + "@example.com"}]},
        {"items": [{"email": "ada@example.com", "full_name": "Ada"}]},
        {"items": [{**VALID_ITEM, "is_admin": True}]},
        {"items": [{**VALID_ITEM, "email": None}]},
        {"items": [{**VALID_ITEM, "full_name": "   "}]},
        {"items": [{**VALID_ITEM, "email": b"ada@example.com"}]},
        {"items": ({**VALID_ITEM},)},
        [VALID_ITEM],
    ],
)
def test_invalid_bulk_bodies_get_marshmallows_errors(body: Any) -> None:
    accept = compile_acceptor(BULK)
    assert accept is not None
    with pytest.raises((Declined, ValidationError)):
        accept(body)

    assert outcome(compile_loader(BULK), body) == outcome(marshmallow(BULK), body)


# Strings near every rule: case and spaces (normalised), empty, blank, too long, NUL,
# lone surrogates, control and bidi characters, non-ASCII letters, almost-emails.
TEXT = st.one_of(
    st.sampled_from(
        [
            "ada@example.com",
            " Ada@Example.COM ",
            "ADA@EXAMPLE.COM",
            "ada@localhost",
            "ada@[127.0.0.1]",
            "ada@@example.com",
            "@example.com",
            "ada@",
            "",
            " ",
            "x" * 8,
            "x" * 7,
            "x" * 128,
            "x" * 129,
            "x" * 200,
            "x" * 201,
            "a" * 320 + "@e.co",
            "zoë@exämple.com",
            "Zoë Ødegård",
            "tab\there",
            "line\nbreak",
            "nul\x00",
            "lone \udc00",
            "esc \x1b[31m",
            "bidi \u202e",
            "\u00a0",
        ]
    ),
    st.text(max_size=40),
)
VALUE = st.one_of(TEXT, st.none(), st.booleans(), st.integers(), st.lists(st.integers(), max_size=2))
KEYS = st.sampled_from(["email", "full_name", "password", "is_admin", "Email"])
ITEM = st.one_of(
    st.fixed_dictionaries({"email": TEXT, "full_name": TEXT, "password": TEXT}),
    st.dictionaries(KEYS, VALUE, max_size=4),
    VALUE,
)
# Valid items of many kinds: what the fast path must accept, and answer as marshmallow does.
STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")  # no NUL, no lone surrogate
VALID = st.fixed_dictionaries(
    {
        "email": st.one_of(
            st.emails(),
            st.sampled_from(["ada@example.com", " Ada@Example.COM ", "zoë@exämple.com", "ada@localhost"]),
        ),
        "full_name": st.text(
            st.characters(categories=("L", "N", "Zs", "P")), min_size=1, max_size=200
        ).filter(str.strip),
        "password": st.text(STORABLE, min_size=8, max_size=128),
    }
)


@settings(max_examples=200, derandomize=True, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(items=st.lists(VALID, min_size=1, max_size=5))
def test_valid_bulk_bodies_are_accepted_by_the_fast_path_as_marshmallow_loads_them(items: list[Any]) -> None:
    accept = compile_acceptor(BULK)
    assert accept is not None

    assert accept({"items": items}) == Schema.load(BULK, {"items": items})


@settings(max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    items=st.lists(st.one_of(VALID, VALID, ITEM), max_size=4),
    extra=st.one_of(st.none(), st.dictionaries(KEYS, VALUE, max_size=1)),
)
def test_any_bulk_body_loads_as_marshmallow_loads_it(items: list[Any], extra: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"items": items, **(extra or {})}

    assert outcome(compile_loader(BULK), body) == outcome(marshmallow(BULK), body)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(item=ITEM)
def test_any_single_user_body_loads_as_marshmallow_loads_it(item: Any) -> None:
    schema = UserCreateSchema()

    assert outcome(compile_loader(schema), item) == outcome(marshmallow(schema), item)


def test_schemas_with_hooks_or_defaults_are_left_to_marshmallow() -> None:
    class WithHook(Schema):
        name = fields.String()

        @post_load
        def shout(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
            return {"name": str(data.get("name", "")).upper()}

    class WithDefault(Schema):
        name = fields.String(load_default="anonymous")

    class WithDottedAttribute(Schema):
        name = fields.String(attribute="profile.name")

    class WithValidator(Schema):
        name = fields.String()

        @validates("name")
        def not_ada(self, value: str, **_kwargs: Any) -> None:
            if value == "ada":
                raise ValidationError("Not ada.")

    class Nesting(Schema):
        inner = fields.Nested(WithHook())

    for schema in (WithHook(), WithDefault(), WithDottedAttribute(), WithValidator()):
        assert compile_acceptor(schema) is None
        assert outcome(compile_loader(schema), {"name": "ada"}) == outcome(
            marshmallow(schema), {"name": "ada"}
        )
    assert compile_acceptor(Nesting()) is None


def test_a_field_that_converts_its_own_way_is_loaded_through_its_deserialize() -> None:
    class Shouting(fields.String):
        def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
            return str(super()._deserialize(value, attr, data, **kwargs)).upper()

    class Loud(Schema):
        word = Shouting(required=True, validate=validate.Length(max=3))

    schema = Loud()
    assert compile_acceptor(schema) is not None
    for data in ({"word": "abc"}, {"word": "abcd"}, {"word": None}, {"word": 3}, {}):
        assert outcome(compile_loader(schema), data) == outcome(marshmallow(schema), data), data


def test_optional_nullable_and_other_fields_load_as_marshmallow_loads_them() -> None:
    class Mixed(Schema):
        count = fields.Integer(strict=True, validate=validate.Range(min=0))
        note = fields.String(allow_none=True, validate=validate.Length(max=3))
        renamed = fields.String(data_key="other", attribute="kept")
        flags = fields.List(fields.Boolean(), validate=validate.Length(max=2))
        # A plain function validator may also fail by returning False (validate.And's rule).
        odd = fields.Integer(validate=lambda value: value % 2 == 1)

    schema = Mixed()
    accept = compile_acceptor(schema)
    assert accept is not None
    for data in (
        {},
        {"count": 3, "note": None, "other": "x", "flags": [True, "yes"], "odd": 3},
        {"count": -1},
        {"count": "3"},
        {"note": "long"},
        {"kept": "x"},
        {"odd": 2},
        {"flags": [True, False, True]},
        {"flags": "no"},
    ):
        assert outcome(compile_loader(schema), data) == outcome(marshmallow(schema), data), data


# A valid email first, so that its domain is remembered when the others come.
EMAILS = [
    "ada@example.com",
    "ada.@example.com",
    ".ada@example.com",
    "a..da@example.com",
    '"ada lovelace"@example.com',
    "ada@example.c",
    "ada@-example.com",
    "ada@exa_mple.com",
    "ada@example..com",
    "ada@[300.0.0.1]",
    "ada@[127.0.0.1]",
    "ada@localhost",
    "ada@LOCALHOST",
    "ada@@localhost",
    "@",
    "ada",
]


def test_emails_load_as_marshmallow_loads_them_whatever_came_before() -> None:
    schema = UserCreateSchema()
    loader = compile_loader(schema)
    for email in [*EMAILS, *reversed(EMAILS)]:
        item = {**VALID_ITEM, "email": email}

        assert outcome(loader, item) == outcome(marshmallow(schema), item), email


def test_an_email_error_naming_the_input_is_marshmallows_own() -> None:
    class Custom(Schema):
        email = fields.String(validate=validate.Email(error="{input} is not an email"))

    schema = Custom()
    for email in EMAILS:
        assert outcome(compile_loader(schema), {"email": email}) == outcome(
            marshmallow(schema), {"email": email}
        ), email
