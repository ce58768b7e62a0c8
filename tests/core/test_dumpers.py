"""Generated dumpers (core/dumpers.py) answer exactly what schema.dump answers: of objects,
of SQLAlchemy Rows and of plain tuples (the driver's), one at a time or in lists."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from marshmallow import Schema, fields
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from webapp.core.db import Database, unit_of_work
from webapp.core.dumpers import compile_dumper, compile_many_dumper, dump_many, dumper_for
from webapp.core.fields import UtcDateTime
from webapp.core.http import json_response
from webapp.core.lists import PageRequest
from webapp.resources.comments.model import Comment
from webapp.resources.comments.repository import CommentReadRepository
from webapp.resources.comments.routes import comment_schema
from webapp.resources.posts.model import Post
from webapp.resources.posts.repository import PostReadRepository
from webapp.resources.posts.routes import post_schema
from webapp.resources.posts.schemas import AuthorSchema
from webapp.resources.users.model import User
from webapp.resources.users.repository import CREATED_COLUMNS, NewUserRow, UserReadRepository, UserRepository
from webapp.resources.users.routes import user_schema
from webapp.resources.users.service import UserService
from webapp.resources.users.tasks import dump_created_users

NOW = datetime(2026, 12, 1, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.fixture
def rows(client: FlaskClient, create_user: Any, db_session: Session) -> dict[str, list[Any]]:
    """Real rows of every resource, some with empty and non-ASCII text."""
    ada = create_user(full_name="Ada Lovelace")
    zoe = create_user(full_name="Zoë Ødegård ☃")
    for writer, title, content in ((ada, "Notes", "On the engine"), (zoe, "Ünïcode ✓", "")):
        response = client.post(
            "/api/v1/posts",
            json={"title": title, "content": content, "user_id": writer["id"]},
            headers=writer.auth,
        )
        assert response.status_code == 201
        post_id = response.get_json()["id"]
        response = client.post(f"/api/v1/posts/{post_id}/comments", json={"body": "Nice ✓"}, headers=ada.auth)
        assert response.status_code == 201
    return {
        "users": list(db_session.scalars(select(User))),
        "posts": list(db_session.scalars(select(Post).options(selectinload(Post.author)))),
        "comments": list(db_session.scalars(select(Comment).options(selectinload(Comment.author)))),
    }


@pytest.mark.parametrize(
    ("resource", "schema"),
    [("users", user_schema), ("posts", post_schema), ("comments", comment_schema), ("users", AuthorSchema())],
)
def test_the_generated_dumper_equals_schema_dump_over_real_rows(
    rows: dict[str, list[Any]], resource: str, schema: Schema
) -> None:
    assert rows[resource]
    dump = dumper_for(schema)
    for row in rows[resource]:
        generated = dump(row)
        assert generated == schema.dump(row)
        assert list(generated) == list(schema.dump(row))  # same key order too
    assert dump_many(schema)(rows[resource]) == type(schema)(many=True).dump(rows[resource])


# What GETs answer: rows of each resource's ReadRepository, through the flat dumper, must be
# exactly what schema.dump makes of the same entity loaded as an ORM object.
READ_SIDES = [
    ("users", UserReadRepository, user_schema),
    ("posts", PostReadRepository, post_schema),
    ("comments", CommentReadRepository, comment_schema),
]


@pytest.mark.parametrize(("resource", "repository", "schema"), READ_SIDES)
def test_the_row_dumper_of_read_rows_equals_schema_dump_of_the_objects(
    rows: dict[str, list[Any]], database: Database, resource: str, repository: Any, schema: Schema
) -> None:
    dump_row = dumper_for(schema, labels=repository.labels())
    with database.engine.connect() as connection:
        reads = repository(connection)
        for entity in rows[resource]:
            row = connection.execute(reads._select_live_by_id(), {"entity_id": entity.id}).one()
            assert tuple(row._fields) == repository.labels()  # the order the dumper reads by
            # A Row (execute) and a plain tuple (the driver's, core/db/driver_reads.py)
            for shape in (row, tuple(row)):
                generated = dump_row(shape)
                assert generated == schema.dump(entity)
                assert list(generated) == list(schema.dump(entity))  # same key order too


@pytest.mark.parametrize(("resource", "repository", "schema"), READ_SIDES)
def test_a_page_of_read_rows_dumps_as_schema_dump_of_the_objects(
    rows: dict[str, list[Any]], database: Database, resource: str, repository: Any, schema: Schema
) -> None:
    with database.engine.connect() as connection:
        reads = repository(connection)
        page = reads.page(reads.live(), PageRequest(sort=(), per_page=100))
    by_id = {entity.id: entity for entity in rows[resource]}
    assert page.items
    assert dump_many(schema, labels=repository.labels())(list(page.items)) == [
        schema.dump(by_id[row.id]) for row in page.items
    ]


def test_created_users_dump_as_schema_dump_dumps_them(database: Database) -> None:
    rows: list[NewUserRow] = [
        {"email": f"u{n}@example.com", "full_name": name, "hashed_password": "x"}
        for n, name in enumerate(["Ada", "Zoë Ødegård ☃", "  spaced  "])
    ]
    with unit_of_work(database) as uow:
        created = UserRepository(uow.session).insert_new(rows, NOW).created

    assert tuple(created[0]._fields) == UserService.created_labels  # the order the dumper reads by
    expected = [user_schema.dump(row) for row in created]
    # Rows (execute) and plain tuples (the driver's): one shared timestamp, formatted once
    for shape in (created, [tuple(row) for row in created]):
        generated = dump_created_users(shape)
        assert generated == expected
        assert [list(body) for body in generated] == [list(body) for body in expected]


def test_stored_users_with_their_own_timestamps_dump_as_schema_dump_dumps_them(
    database: Database, db_session: Session
) -> None:
    with unit_of_work(database) as uow:
        for n in range(3):
            UserRepository(uow.session).insert_new(
                [{"email": f"t{n}@example.com", "full_name": "T", "hashed_password": "x"}],
                NOW + timedelta(microseconds=n),
            )
    # Read back, not answered by the INSERT: SQLite hands naive datetimes back here.
    rows = db_session.execute(select(*CREATED_COLUMNS).order_by(User.id)).all()

    assert len({row.created_at for row in rows}) == 3
    assert dump_created_users(rows) == [user_schema.dump(row) for row in rows]


def test_no_rows_dump_to_an_empty_list() -> None:
    assert dump_created_users([]) == []
    assert dump_many(post_schema)([]) == []


def test_a_nested_object_a_row_lacks_dumps_as_none_as_marshmallow_does() -> None:
    values = {
        "id": 1,
        "title": "t",
        "content": "c",
        "user_id": 2,
        "author_id": None,
        "author_full_name": None,
        "version": 1,
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 2, tzinfo=UTC),
    }
    labels = tuple(reversed(values))  # read by position, whatever the order
    dump_row = compile_dumper(post_schema, labels=labels)
    row = tuple(values[label] for label in labels)
    obj = SimpleNamespace(**{**values, "author": None})

    assert dump_row(row) == post_schema.dump(obj)
    assert dump_row(row)["author"] is None


@pytest.mark.parametrize("compile_", [compile_dumper, compile_many_dumper])
def test_a_schema_with_a_collection_has_no_row_dumper(compile_: Any) -> None:
    class WithCollection(Schema):
        id = fields.Integer()
        authors = fields.Nested(AuthorSchema, many=True)

    with pytest.raises(ValueError, match="cannot be dumped from rows"):
        compile_(WithCollection(), labels=("id", "authors_id"))


@pytest.mark.parametrize("compile_", [compile_dumper, compile_many_dumper])
def test_rows_without_a_column_of_the_schema_have_no_row_dumper(compile_: Any) -> None:
    with pytest.raises(ValueError, match="cannot be dumped from rows"):
        compile_(post_schema, labels=("id", "title"))


def test_the_json_body_is_the_same_document_json_dumps_makes(rows: dict[str, list[Any]]) -> None:
    body = {"items": [dumper_for(post_schema)(post) for post in rows["posts"]], "meta": {"total": None}}
    response = json_response(body)

    assert json.loads(response.get_data()) == json.loads(json.dumps(body, ensure_ascii=False))
    assert "☃" in response.get_data(as_text=True) or "Ü" in response.get_data(as_text=True)


def test_a_body_orjson_refuses_is_still_answered() -> None:
    response = json_response({"big": 2**70, "text": "lone \ud800 surrogate"})

    assert json.loads(response.get_data().decode("utf-8", "surrogatepass"))["big"] == 2**70


def test_none_values_and_naive_times_are_dumped_as_marshmallow_dumps_them() -> None:
    class Everything(Schema):
        n = fields.Integer()
        s = fields.String()
        b = fields.Boolean()
        t = UtcDateTime()
        nested = fields.Nested(AuthorSchema)

    schema = Everything()
    naive = SimpleNamespace(n=None, s=None, b=None, t=datetime(2026, 1, 2, 3, 4, 5), nested=None)
    aware = SimpleNamespace(
        n=7, s="x", b=True, t=datetime(2026, 1, 2, tzinfo=UTC), nested=SimpleNamespace(id=1, full_name="A")
    )
    for obj in (naive, aware):
        assert compile_dumper(schema)(obj) == schema.dump(obj)


def test_values_of_every_kind_dump_as_schema_dump_dumps_them() -> None:
    class Everything(Schema):
        number = fields.Integer()
        text = fields.String()
        flag = fields.Boolean()
        picky = fields.Boolean(truthy={"yes"}, falsy={"no"})
        when = UtcDateTime()
        renamed = fields.String(attribute="other", data_key="label")
        ratio = fields.Float()  # not inlined: through the field

    schema = Everything()
    labels = ("number", "text", "flag", "picky", "when", "other", "ratio")
    paris = timezone(timedelta(hours=1))
    rows = [
        (1, "a", True, True, NOW, "o", 0.5),
        (None, None, None, None, None, None, None),
        (2, b"bytes", False, False, NOW.astimezone(paris), "", 1),  # the same instant, another offset
        (3, 7, 1, "yes", datetime(2026, 1, 2, 3, 4, 5), "p", "2.5"),  # naive: SQLite's
        (4, "", 0, "no", NOW + timedelta(microseconds=1), "q", -1.0),
        (True, "x", "", "maybe", NOW, "r", 0),
    ]
    objects = [SimpleNamespace(**dict(zip(labels, row, strict=True))) for row in rows]
    expected = [schema.dump(dict(zip(labels, row, strict=True))) for row in rows]

    for generated in (
        compile_many_dumper(schema, labels=labels)(rows),
        [compile_dumper(schema, labels=labels)(row) for row in rows],
        compile_many_dumper(schema)(objects),
        [compile_dumper(schema)(obj) for obj in objects],
    ):
        assert generated == expected
        assert [list(body) for body in generated] == [list(body) for body in expected]


def test_fields_it_cannot_inline_and_mappings_go_through_marshmallow() -> None:
    class Odd(Schema):
        id = fields.Integer()
        shout = fields.Method("upper")
        renamed = fields.String(attribute="name", data_key="label")

        def upper(self, obj: Any) -> str:
            return str(obj.name).upper()

    schema = Odd()
    obj = SimpleNamespace(id=1, name="ada")
    assert compile_dumper(schema)(obj) == schema.dump(obj) == {"id": 1, "shout": "ADA", "label": "ada"}
    assert compile_many_dumper(schema)([obj]) == [schema.dump(obj)]
    plain = Schema.from_dict({"id": fields.Integer(), "name": fields.String()})()
    assert (
        compile_dumper(plain)({"id": 2, "name": "b"})
        == plain.dump({"id": 2, "name": "b"})
        == {"id": 2, "name": "b"}
    )
    assert compile_many_dumper(plain)([{"id": 2, "name": "b"}]) == [{"id": 2, "name": "b"}]


def test_a_wall_time_repeated_when_the_clocks_go_back_is_not_taken_for_the_first() -> None:
    new_york = ZoneInfo("America/New_York")
    first = datetime(2024, 11, 3, 1, 30, tzinfo=new_york)  # 05:30 UTC
    second = first.replace(fold=1)  # the same wall time an hour later: 06:30 UTC
    schema = Schema.from_dict({"a": UtcDateTime(), "b": UtcDateTime()})()
    obj = SimpleNamespace(a=first, b=second)

    assert first == second  # what a memo keyed on equality alone would trust
    assert compile_dumper(schema)(obj) == schema.dump(obj)
    assert compile_many_dumper(schema, labels=("a", "b"))([(first, second), (second, first)]) == [
        schema.dump(obj),
        schema.dump(SimpleNamespace(a=second, b=first)),
    ]


def test_fields_and_schemas_that_read_values_their_own_way_are_not_inlined() -> None:
    class TimesTen(fields.Raw):
        def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = fields.missing_) -> Any:  # type: ignore[attr-defined]
            return obj.a * 10

    class FromData(Schema):
        a = fields.Integer()

        def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
            return obj.data[attr]

    own_field = Schema.from_dict({"a": TimesTen()})()
    assert (
        compile_dumper(own_field)(SimpleNamespace(a=1)) == own_field.dump(SimpleNamespace(a=1)) == {"a": 10}
    )
    own_lookup = FromData()
    obj = SimpleNamespace(a=1, data={"a": 5})
    assert compile_dumper(own_lookup)(obj) == own_lookup.dump(obj) == {"a": 5}


def test_attributes_that_are_keywords_or_change_under_nfkc_are_not_written_into_code() -> None:
    keyword_named = Schema.from_dict({"from": fields.String()})()  # a SyntaxError if inlined
    ligature = Schema.from_dict({"x": fields.String(attribute="\ufb01le")})()  # "ﬁle" would read obj.file
    obj = SimpleNamespace(**{"from": "a", "\ufb01le": "ligature", "file": "plain"})

    assert compile_dumper(keyword_named)(obj) == keyword_named.dump(obj) == {"from": "a"}
    assert compile_dumper(ligature)(obj) == ligature.dump(obj) == {"x": "ligature"}
