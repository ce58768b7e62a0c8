"""Kept SELECTs on a read connection go straight to the driver (core/db/driver_reads.py),
with the answers, the SQL counts, the errors and the transaction state of execute()."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg2.extensions
import pytest
from flask import Flask
from sqlalchemy import (
    Connection,
    Numeric,
    String,
    TypeDecorator,
    bindparam,
    cast,
    func,
    select,
    type_coerce,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row

from tests.support.faults import idle_in_transaction_count
from webapp.core.db import Database, get_reader
from webapp.core.db.database import WriteInReadOnlyRequest
from webapp.core.db.driver_reads import all_rows, first_row, kept
from webapp.core.lists import PageRequest
from webapp.core.lists.keyset import parse_sort
from webapp.resources.users.model import User
from webapp.resources.users.repository import UserReadRepository

users = User.__table__


@pytest.fixture
def reader(app: Flask, database: Database) -> Iterator[Connection]:
    """What a GET reads with: a connection of the read pool, as the app hands it out."""
    with app.test_request_context("/", method="GET"):
        connection = get_reader()
        assert isinstance(connection, Connection)
        try:
            yield connection
        finally:
            database.release_request_reader()


def _by_id() -> Any:
    return UserReadRepository._select_live_by_id()


@pytest.mark.postgres_only
def test_a_kept_select_on_a_read_connection_is_answered_by_the_driver_as_execute_answers(
    reader: Connection, create_user: Any
) -> None:
    user = create_user()

    row = first_row(reader, _by_id(), {"entity_id": user["id"]})

    assert type(row) is tuple  # the driver's own row: execute() would have made a Row
    assert row == tuple(reader.execute(_by_id(), {"entity_id": user["id"]}).one())
    assert first_row(reader, _by_id(), {"entity_id": user["id"] + 1000}) is None


@pytest.mark.postgres_only
def test_an_unfiltered_page_and_its_count_are_answered_by_the_driver(
    reader: Connection, create_user: Any
) -> None:
    created = [create_user()["id"] for _ in range(3)]
    reads = UserReadRepository(reader)

    page = reads.page(reads.live(), PageRequest(sort=parse_sort("-id", reads.lister.allowed), per_page=2))

    assert all(type(row) is tuple for row in page.items)  # the driver's rows, not execute's
    assert [row[0] for row in page.items] == sorted(created, reverse=True)[:2]
    assert page.total == 3
    assert page.next_key == (sorted(created, reverse=True)[1],)  # read by position from a tuple


@pytest.mark.postgres_only
def test_a_driver_read_leaves_no_transaction_open(
    reader: Connection, create_user: Any, admin: Connection
) -> None:
    user = create_user()

    assert first_row(reader, _by_id(), {"entity_id": user["id"]}) is not None

    driver = reader.connection.dbapi_connection
    assert driver is not None
    assert driver.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert idle_in_transaction_count(admin) == 0


@pytest.mark.postgres_only
def test_a_driver_read_is_counted_in_the_request_log(
    client: Any, create_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = create_user()
    caplog.set_level(logging.INFO, logger="webapp.request")

    response = client.get(f"/api/v1/users/{user['id']}")

    assert response.status_code == 200
    [line] = [
        record.fields  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "webapp.request" and record.fields["path"] == f"/api/v1/users/{user['id']}"  # type: ignore[attr-defined]
    ]
    assert line["sql_count"] == 1


@pytest.mark.postgres_only
def test_a_driver_error_is_raised_as_sqlalchemys_and_the_connection_stays_usable(reader: Connection) -> None:
    with pytest.raises(sa_exc.DataError) as raised:
        first_row(reader, _by_id(), {"entity_id": "not a number"})

    assert not raised.value.connection_invalidated
    assert first_row(reader, _by_id(), {"entity_id": 10**9}) is None


@pytest.mark.postgres_only
def test_a_driver_connection_closed_under_sqlalchemy_is_invalidated_as_execute_would(
    reader: Connection,
) -> None:
    driver = reader.connection.dbapi_connection
    assert driver is not None
    driver.close()  # the cursor cannot even be made: an error before the statement is sent

    with pytest.raises(sa_exc.DBAPIError) as raised:
        first_row(reader, _by_id(), {"entity_id": 1})

    assert raised.value.connection_invalidated
    assert reader.invalidated


@pytest.mark.postgres_only
def test_a_dead_connection_under_a_driver_read_is_invalidated_as_execute_would(
    reader: Connection, admin: Connection
) -> None:
    driver = reader.connection.dbapi_connection
    assert driver is not None
    assert admin.scalar(select(func.pg_terminate_backend(driver.get_backend_pid())))

    with pytest.raises(sa_exc.OperationalError) as raised:
        first_row(reader, _by_id(), {"entity_id": 1})

    assert raised.value.connection_invalidated  # what the GET retry looks for (read_retry.py)
    assert reader.invalidated


class Shouted(TypeDecorator[str]):
    """A type whose values SQLAlchemy converts on the way out: the driver alone would not."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else value.upper()


def test_what_the_driver_alone_would_answer_differently_takes_execute(
    reader: Connection, database: Database, create_user: Any
) -> None:
    user = create_user()
    by_id = users.c.id == bindparam("entity_id")
    params = {"entity_id": user["id"]}

    not_kept = select(users.c.id).where(by_id)  # built per call: no plan is kept for it
    numeric = kept(select(cast(users.c.id, Numeric(10, 2))).where(by_id))  # psycopg2 converts it
    escaped = kept(select(users.c.id).where(users.c.id == bindparam("entity.id")))
    converted = kept(select(type_coerce(users.c.full_name, Shouted())).where(by_id))
    expanding = kept(select(users.c.id).where(users.c.id.in_(bindparam("ids", expanding=True))))

    assert type(first_row(reader, not_kept, params)) is Row
    assert first_row(reader, converted, params) == (user["full_name"].upper(),)
    assert first_row(reader, numeric, params) == (Decimal(user["id"]),)
    assert first_row(reader, escaped, {"entity.id": user["id"]}) == (user["id"],)
    assert [tuple(row) for row in all_rows(reader, expanding, {"ids": [user["id"], 0]})] == [(user["id"],)]
    with database.engine.connect() as write_pool:  # not autocommit: the driver would begin unseen
        assert type(first_row(write_pool, _by_id(), params)) is Row


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "option",
    [{"isolation_level": "READ COMMITTED"}, {"schema_translate_map": {None: "public"}}],
    ids=["isolation-level", "schema-translation"],
)
def test_a_read_connection_with_options_the_plan_ignores_takes_execute(
    reader: Connection, create_user: Any, option: dict[str, Any]
) -> None:
    user = create_user()
    reader.execution_options(**option)

    row = first_row(reader, _by_id(), {"entity_id": user["id"]})

    assert type(row) is Row
    assert row is not None
    assert row[0] == user["id"]


def test_a_kept_write_on_a_read_connection_meets_the_read_only_guard(
    reader: Connection, create_user: Any
) -> None:
    user = create_user()
    by_id = User.id == bindparam("entity_id")
    rename = kept(update(User).where(by_id).values(full_name="Renamed").returning(User.id))  # type: ignore[type-var]

    with pytest.raises(WriteInReadOnlyRequest):
        first_row(reader, rename, {"entity_id": user["id"]})  # type: ignore[arg-type]

    assert reader.scalar(select(users.c.full_name).where(users.c.id == user["id"])) == user["full_name"]
