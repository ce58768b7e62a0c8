"""The transaction examples of docs/architecture.md, run as written."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.core.db import unit_of_work
from webapp.resources.users.model import User
from webapp.resources.users.service import NewUser, UserService


def _import_users(rows: list[NewUser]) -> list[str]:
    """The docs' import_users: one SAVEPOINT per row inside the request's transaction."""
    failed = []
    for row in rows:
        try:
            with unit_of_work() as uow:
                UserService(uow.session, password_method="pbkdf2:sha256:1000").create(row)
        except IntegrityError:
            failed.append(row["email"])
    return failed


def test_a_failed_savepoint_in_a_request_undoes_only_its_own_row(app: Flask, db_session: Session) -> None:
    rows: list[NewUser] = [
        {"email": "first@example.com", "full_name": "First", "password": "password123"},
        {"email": "first@example.com", "full_name": "Duplicate", "password": "password123"},
        {"email": "third@example.com", "full_name": "Third", "password": "password123"},
    ]
    with app.test_request_context("/", method="POST"):
        app.preprocess_request()
        failed = _import_users(rows)
        app.process_response(app.make_response(("ok", 200)))
        app.do_teardown_request()

    assert failed == ["first@example.com"]
    assert set(db_session.scalars(select(User.full_name))) == {"First", "Third"}
