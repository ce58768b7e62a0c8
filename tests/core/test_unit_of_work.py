"""unit_of_work(): commit on clean exit, rollback on error, savepoint when nested."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webapp.core.db import Database, get_session, unit_of_work
from webapp.resources.users.model import User


def _new_user(email: str) -> User:
    return User(email=email, full_name="U", hashed_password="x")


def _emails(session: Session) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(User.email)))


def test_clean_exit_commits(database: Database, db_session: Session) -> None:
    with unit_of_work(database) as uow:
        uow.session.add(_new_user("a@example.com"))

    assert _emails(db_session) == {"a@example.com"}


def test_exception_rolls_back_and_propagates(database: Database, db_session: Session) -> None:
    with pytest.raises(RuntimeError), unit_of_work(database) as uow:
        uow.session.add(_new_user("a@example.com"))
        uow.session.flush()
        raise RuntimeError("job failed")

    assert _emails(db_session) == set()


def test_session_is_closed_after_exit(database: Database) -> None:
    with unit_of_work(database) as uow:
        uow.session.add(_new_user("a@example.com"))
        session = uow.session
    assert not session.in_transaction()
    assert list(session) == []


def test_nested_unit_failure_rolls_back_only_its_own_work(database: Database, db_session: Session) -> None:
    with unit_of_work(database) as outer:
        outer.session.add(_new_user("outer@example.com"))
        with pytest.raises(ValueError, match="inner failed"), unit_of_work(database) as inner:
            assert inner.nested
            assert inner.session is outer.session
            inner.session.add(_new_user("inner@example.com"))
            inner.session.flush()
            raise ValueError("inner failed")

    assert _emails(db_session) == {"outer@example.com"}


def test_nested_unit_commits_only_with_the_outer_one(database: Database, db_session: Session) -> None:
    with pytest.raises(RuntimeError, match="outer failed"), unit_of_work(database):
        with unit_of_work(database) as inner:
            inner.session.add(_new_user("inner@example.com"))
        assert _emails(db_session) == set()  # released savepoint, not a commit
        raise RuntimeError("outer failed")

    assert _emails(db_session) == set()


def test_inside_a_request_it_joins_the_requests_transaction(
    app: Flask, database: Database, db_session: Session
) -> None:
    with app.test_request_context("/", method="POST"):
        get_session()  # the request's session, as a view's first use makes it
        with unit_of_work(database) as uow:
            assert uow.nested
            assert uow.session is get_session()
            uow.session.add(_new_user("in-request@example.com"))
        # The unit of work did not commit behind the request's back...
        assert _emails(db_session) == set()
        # ...the request's own outcome decides: here it fails, so nothing is stored.
        response = app.make_response(("failed", 500))
        app.process_response(response)
        app.do_teardown_request()

    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_inside_a_successful_request_the_work_is_committed_by_the_hook(
    app: Flask, database: Database, db_session: Session
) -> None:
    with app.test_request_context("/", method="POST"):
        get_session()
        with unit_of_work(database) as uow:
            uow.session.add(_new_user("kept@example.com"))
        response = app.make_response(("ok", 200))
        app.process_response(response)
        app.do_teardown_request()

    assert _emails(db_session) == {"kept@example.com"}


def test_unit_of_work_uses_the_current_app_by_default(app: Flask, db_session: Session) -> None:
    with app.app_context(), unit_of_work() as uow:
        uow.session.add(_new_user("ctx@example.com"))

    assert _emails(db_session) == {"ctx@example.com"}
