"""UserRepository.insert_new: PostgreSQL's one INSERT from arrays, equal to the portable form."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.core.db import Database, unit_of_work
from webapp.resources.users.model import User
from webapp.resources.users.repository import CREATED_COLUMNS, InsertedUsers, NewUserRow, UserRepository

NOW = datetime(2026, 12, 1, 12, 30, 45, 123456, tzinfo=UTC)


def _rows(prefix: str, count: int) -> list[NewUserRow]:
    return [
        {
            "email": f"{prefix}{number:03d}@example.com",
            "full_name": f"Name {number}",
            "hashed_password": f"h{number}",
        }
        for number in range(count)
    ]


def _answered(inserted: InsertedUsers, prefix: str) -> dict[str, dict[str, Any]]:
    """The rows answered, by email without its prefix, without the id."""
    return {
        row["email"].removeprefix(prefix): {key: value for key, value in row.items() if key != "id"}
        | {"email": row["email"].removeprefix(prefix)}
        for row in inserted.created
    }


def _stored(session: Session, prefix: str) -> dict[str, dict[str, Any]]:
    """Every column stored, by email without its prefix, without the id."""
    users = session.scalars(select(User).where(User.email.startswith(prefix))).all()
    return {
        user.email.removeprefix(prefix): {
            column.key: getattr(user, column.key)
            for column in User.__table__.c
            if column.key not in ("id", "email")
        }
        for user in users
    }


@pytest.mark.postgres_only(reason="the arrays form is PostgreSQL's; SQLite runs the portable form")
def test_the_arrays_insert_stores_and_answers_what_the_portable_insert_does(
    database: Database, db_session: Session
) -> None:
    with unit_of_work(database) as uow:
        users = UserRepository(uow.session)
        fast = users.insert_new(_rows("fast-", 40), NOW)
        portable = users.insert_new_portable(_rows("portable-", 40), NOW)

    assert fast.taken == portable.taken == set()
    assert len(fast.created) == 40
    assert [column.key for column in CREATED_COLUMNS] == list(fast.created[0])
    assert _answered(fast, "fast-") == _answered(portable, "portable-")
    assert _stored(db_session, "fast-") == _stored(db_session, "portable-")
    stored_ids = dict(db_session.execute(select(User.email, User.id)).all())
    assert all(stored_ids[row["email"]] == row["id"] for row in fast.created)


@pytest.mark.postgres_only(reason="the arrays form is PostgreSQL's; SQLite runs the portable form")
def test_the_arrays_insert_writes_the_rows_in_the_order_given(
    database: Database, db_session: Session
) -> None:
    # The order is what makes two batches sharing emails lock them in the same order.
    rows = _rows("order-", 30)[::-1]

    with unit_of_work(database) as uow:
        UserRepository(uow.session).insert_new(rows, NOW)

    by_id = db_session.scalars(select(User.email).order_by(User.id)).all()
    assert by_id == [row["email"] for row in rows]


ARRAY_SYNTAX = ["a,b", "{braces}", "NULL", " spaced ", "", "Zoë ☃ }{,", "'"]


@pytest.mark.parametrize(
    ("names", "email_suffix"),
    [
        (['say "hi"', "back\\slash", *ARRAY_SYNTAX, 'Zoë ☃ \\"', "\\"], '"\\@example.com'),
        # Nothing to escape anywhere: each column is joined at once.
        (ARRAY_SYNTAX, ",{}@example.com"),
    ],
)
def test_text_with_quotes_backslashes_and_array_syntax_is_stored_as_given(
    database: Database, db_session: Session, names: list[str], email_suffix: str
) -> None:
    # PostgreSQL's form sends each column as one array literal: nothing may be read as syntax.
    rows: list[NewUserRow] = [
        {"email": f"q{n}{email_suffix}", "full_name": name, "hashed_password": name[::-1]}
        for n, name in enumerate(names)
    ]

    with unit_of_work(database) as uow:
        created = UserRepository(uow.session).insert_new(rows, NOW).created

    assert sorted((row["email"], row["full_name"]) for row in created) == sorted(
        (row["email"], row["full_name"]) for row in rows
    )
    stored = db_session.execute(select(User.email, User.full_name, User.hashed_password)).all()
    assert sorted(tuple(row) for row in stored) == sorted(
        (row["email"], row["full_name"], row["hashed_password"]) for row in rows
    )


@pytest.mark.parametrize("form", ["insert_new", "insert_new_portable"])
def test_emails_of_live_users_are_left_out_as_taken(database: Database, form: str) -> None:
    with unit_of_work(database) as uow:
        uow.session.add_all(
            [
                User(email="Ada@Example.com", full_name="A", hashed_password="x", version=1),
                User(email="gone@example.com", full_name="G", hashed_password="x", version=1),
            ]
        )
        uow.session.flush()
        uow.session.execute(
            text("UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE email = 'gone@example.com'")
        )
    session = database.new_session()
    try:
        rows: list[NewUserRow] = [
            {"email": email, "full_name": "N", "hashed_password": "x"}
            for email in ("ada@example.com", "gone@example.com", "new@example.com")
        ]

        inserted: InsertedUsers = getattr(UserRepository(session), form)(rows, NOW)

        # The case differs from the stored email: the unique index is on lower(email).
        assert inserted.taken == {"ada@example.com"}
        assert inserted.created == []
        # Nothing written, and the transaction is still usable.
        assert (
            session.scalar(select(func.count()).select_from(User).where(User.email == "new@example.com")) == 0
        )
    finally:
        session.rollback()
        session.close()


@pytest.mark.postgres_only(reason="SQLite serializes writers: no other transaction can insert meanwhile")
def test_an_email_another_transaction_commits_first_is_taken(database: Database, engine: Any) -> None:
    first = database.new_session()
    second = database.new_session()
    outcome: list[InsertedUsers] = []
    try:
        UserRepository(first).insert_new(_rows("race-", 1), NOW)
        waiting = threading.Thread(
            target=lambda: outcome.append(UserRepository(second).insert_new(_rows("race-", 3), NOW))
        )
        waiting.start()
        # The second INSERT waits on the first's uncommitted index entry. pg_stat_activity
        # is read once per transaction: one transaction per look.
        deadline = time.monotonic() + 10
        waiting_sql = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while True:
            with engine.connect() as observer:
                if observer.scalar(waiting_sql):
                    break
            assert time.monotonic() < deadline, "the second INSERT never waited"
            time.sleep(0.01)
        first.commit()
        waiting.join(timeout=10)
    finally:
        second.rollback()
        second.close()
        first.close()

    assert outcome[0].taken == {"race-000@example.com"}


def test_a_row_another_constraint_refuses_raises(database: Database) -> None:
    session = database.new_session()
    try:
        rows: list[Any] = [{"email": "nameless@example.com", "full_name": None, "hashed_password": "x"}]

        with pytest.raises(IntegrityError):
            UserRepository(session).insert_new(rows, NOW)
    finally:
        session.rollback()
        session.close()
