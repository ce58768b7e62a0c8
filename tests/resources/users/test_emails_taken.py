"""The bulk create's check of which emails are taken."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.support.statements import count_statements
from webapp.core.db import Database
from webapp.resources.users.model import User
from webapp.resources.users.repository import UserRepository


def test_emails_taken_finds_live_users_case_insensitively(database: Database) -> None:
    session = database.new_session()
    try:
        session.add_all(
            [
                User(email="Ada@Example.com", full_name="A", hashed_password="x"),
                User(email="gone@example.com", full_name="G", hashed_password="x", deleted_at=None),
            ]
        )
        session.flush()
        gone = session.scalars(text("SELECT id FROM users WHERE email = 'gone@example.com'")).one()
        session.execute(text("UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE id = :id"), {"id": gone})

        taken = UserRepository(session).emails_taken(
            ["ada@example.com", "gone@example.com", "new@example.com"]
        )

        assert taken == {"ada@example.com"}
    finally:
        session.rollback()
        session.close()


# SQLite's IN (...) is compiled once too: SQLAlchemy expands the list only when sending,
# so the text it sends grows with the list while the cached compilation does not.
@pytest.mark.postgres_only(reason="the unnest() form is PostgreSQL's")
def test_the_statement_is_the_same_for_any_number_of_emails(database: Database) -> None:
    # One statement text whatever the batch size, so SQLAlchemy compiles it once and
    # caches it: a VALUES list of 1,000 bound values cost ~50 ms to compile per call.
    session = database.new_session()
    try:
        repository = UserRepository(session)
        with count_statements(database) as few:
            repository.emails_taken([f"u{n}@example.com" for n in range(3)])
        with count_statements(database) as many:
            repository.emails_taken([f"u{n}@example.com" for n in range(500)])
    finally:
        session.close()

    assert few.statements == many.statements
    assert len(few.statements) == 1
