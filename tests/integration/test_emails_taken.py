"""The bulk create's check of which emails are taken."""

from __future__ import annotations

from sqlalchemy import text

from webapp.db import Database
from webapp.models import User
from webapp.repositories import UserRepository


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
