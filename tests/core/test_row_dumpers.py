"""Generated rows dumpers (core/row_dumpers.py) answer exactly what schema.dump answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

from marshmallow import Schema, fields
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.core.db import Database, unit_of_work
from webapp.core.fields import UtcDateTime
from webapp.core.row_dumpers import compile_rows_dumper, dump_rows, rows_dumper_for
from webapp.resources.users.model import User
from webapp.resources.users.repository import CREATED_COLUMNS, NewUserRow, UserRepository
from webapp.resources.users.routes import user_schema

NOW = datetime(2026, 12, 1, 12, 30, 45, 123456, tzinfo=UTC)


def _marshmallow(schema: Schema, rows: Any) -> list[dict[str, Any]]:
    return [schema.dump(row) for row in rows]


def test_created_users_dump_as_schema_dump_dumps_them(database: Database) -> None:
    rows: list[NewUserRow] = [
        {"email": f"u{n}@example.com", "full_name": name, "hashed_password": "x"}
        for n, name in enumerate(["Ada", "Zoë Ødegård ☃", "  spaced  "])
    ]
    with unit_of_work(database) as uow:
        created = UserRepository(uow.session).insert_new(rows, NOW).created

    assert compile_rows_dumper(user_schema, created[0]._fields) is not None
    generated = dump_rows(user_schema, created)
    assert generated == _marshmallow(user_schema, created)
    assert [list(body) for body in generated] == [list(body) for body in _marshmallow(user_schema, created)]


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
    assert dump_rows(user_schema, rows) == _marshmallow(user_schema, rows)


def test_values_of_every_kind_dump_as_schema_dump_dumps_them() -> None:
    class Everything(Schema):
        number = fields.Integer()
        text = fields.String()
        flag = fields.Boolean()
        picky = fields.Boolean(truthy={"yes"}, falsy={"no"})
        when = UtcDateTime()
        renamed = fields.String(attribute="other", data_key="label")

    schema = Everything()
    columns = ("number", "text", "flag", "picky", "when", "other")
    paris = timezone(timedelta(hours=1))
    rows = [
        (1, "a", True, True, NOW, "o"),
        (None, None, None, None, None, None),
        (2, b"bytes", False, False, NOW.astimezone(paris), ""),  # the same instant, another offset
        (3, 7, 1, "yes", datetime(2026, 1, 2, 3, 4, 5), "p"),  # naive: SQLite's
        (4, "", 0, "no", NOW + timedelta(microseconds=1), "q"),
        (5, "x", "", "maybe", NOW, "r"),
    ]
    generated = compile_rows_dumper(schema, columns)

    assert generated is not None
    expected = [schema.dump(dict(zip(columns, row, strict=True))) for row in rows]
    assert generated(rows) == expected
    assert [list(body) for body in generated(rows)] == [list(body) for body in expected]


def test_rows_without_a_dumped_column_are_left_to_schema_dump() -> None:
    class Named(Schema):
        name = fields.String()
        email = fields.String()

    schema = Named()

    assert compile_rows_dumper(schema, ("name",)) is None
    assert rows_dumper_for(schema, ("name",))(cast(Any, [{"name": "Ada"}])) == [{"name": "Ada"}]


def test_no_rows_dump_to_an_empty_list() -> None:
    assert dump_rows(user_schema, []) == []
