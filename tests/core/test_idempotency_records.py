"""The idempotency table: the database decides who stored a key first, by a named constraint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from webapp.core.db import Base, Database
from webapp.core.db.declarations import conflict_messages
from webapp.core.db.mixins import utcnow
from webapp.core.idempotency.model import IDEMPOTENCY_KEY_CONSTRAINT, IdempotencyRecord
from webapp.core.idempotency.repository import IdempotencyRepository
from webapp.core.problems import constraint_name
from webapp.resources.users.model import USERS_EMAIL_UNIQUE_INDEX, User


def _record(key: str, expires_in: timedelta = timedelta(hours=1)) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        fingerprint="f" * 64,
        response_status=201,
        response_body='{"id": 1}',
        response_headers={"Location": "/api/v1/users/1"},
        expires_at=utcnow() + expires_in,
    )


def _integrity_error(database: Database, *objects: object) -> sa_exc.IntegrityError:
    session = database.new_session()
    try:
        session.add_all(objects)
        with pytest.raises(sa_exc.IntegrityError) as caught:
            session.flush()
        return caught.value
    finally:
        session.rollback()
        session.close()


def test_a_second_record_with_the_same_key_violates_the_named_key_constraint(database: Database) -> None:
    with database.new_session() as session, session.begin():
        session.add(_record("dup"))

    error = _integrity_error(database, _record("dup"))

    assert constraint_name(error) == IDEMPOTENCY_KEY_CONSTRAINT
    assert IDEMPOTENCY_KEY_CONSTRAINT in conflict_messages(Base.metadata)


def test_the_email_index_is_still_found_by_name(database: Database) -> None:
    with database.new_session() as session, session.begin():
        session.add(User(email="a@example.com", full_name="A", hashed_password="x"))

    error = _integrity_error(database, User(email="A@example.com", full_name="B", hashed_password="x"))

    assert constraint_name(error) == USERS_EMAIL_UNIQUE_INDEX
    assert USERS_EMAIL_UNIQUE_INDEX in conflict_messages(Base.metadata)


def test_records_keep_headers_and_body_as_stored(database: Database, db_session: Session) -> None:
    with database.new_session() as session, session.begin():
        session.add(_record("round-trip"))

    stored = db_session.get(IdempotencyRecord, "round-trip")

    assert stored is not None
    assert stored.response_headers == {"Location": "/api/v1/users/1"}
    assert stored.response_body == '{"id": 1}'
    assert not stored.is_expired(utcnow())
    assert stored.is_expired(utcnow() + timedelta(hours=2))


def test_delete_expired_takes_at_most_one_batch_oldest_first(database: Database, db_session: Session) -> None:
    with database.new_session() as session, session.begin():
        for hours in (-3, -2, -1):
            session.add(_record(f"expired{hours}", timedelta(hours=hours)))
        session.add(_record("live"))

    with database.new_session() as session, session.begin():
        deleted = IdempotencyRepository(session).delete_expired(utcnow(), limit=2)

    assert deleted == 2
    assert db_session.get(IdempotencyRecord, "expired-1") is not None
    assert db_session.get(IdempotencyRecord, "live") is not None
