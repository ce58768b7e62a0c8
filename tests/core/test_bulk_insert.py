"""Repository.bulk_insert_rows: many plain rows in few INSERTs, ids paired with their rows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.statements import count_statements
from webapp.core.db import Database, unit_of_work
from webapp.resources.posts.model import Post
from webapp.resources.posts.repository import PostRepository
from webapp.resources.users.model import User
from webapp.resources.users.repository import UserRepository


def _user_rows(count: int) -> list[dict[str, object]]:
    # Emails in descending order, so an id handed to the wrong row cannot match by chance.
    return [
        {"email": f"bulk{number:05d}@example.com", "full_name": f"Bulk {number}", "hashed_password": "x"}
        for number in range(count, 0, -1)
    ]


def test_bulk_insert_returns_the_new_ids_in_the_order_of_the_rows(
    database: Database, db_session: Session
) -> None:
    rows = _user_rows(2500)

    with unit_of_work(database) as uow:
        ids = UserRepository(uow.session).bulk_insert_rows(rows)

    assert len(ids) == len(set(ids)) == 2500
    stored = dict(db_session.execute(select(User.id, User.email)).all())
    assert [stored[user_id] for user_id in ids] == [row["email"] for row in rows]


# SQLite cannot tie the rowids of a multi-row INSERT to its parameter sets, so SQLAlchemy
# sends one INSERT per row there when the ids must come back in order.
@pytest.mark.postgres_only(reason="SQLite sends one INSERT per row for ordered ids")
def test_bulk_insert_sends_one_insert_per_thousand_rows(database: Database) -> None:
    with count_statements(database) as log, unit_of_work(database) as uow:
        UserRepository(uow.session).bulk_insert_rows(_user_rows(2500))

    assert [sql.split(None, 3)[:3] for sql in log.statements] == [["INSERT", "INTO", "users"]] * 3


def test_bulk_inserted_rows_get_the_defaults_an_added_object_gets(
    database: Database, db_session: Session
) -> None:
    with unit_of_work(database) as uow:
        (user_id,) = UserRepository(uow.session).bulk_insert_rows(_user_rows(1))

    user = db_session.get(User, user_id)
    assert user is not None
    assert user.version == 1
    assert user.is_active is True
    assert user.deleted_at is None
    assert user.created_at is not None
    assert user.updated_at is not None


def test_bulk_insert_without_ids_writes_every_row(database: Database, db_session: Session) -> None:
    with unit_of_work(database) as uow:
        (author_id,) = UserRepository(uow.session).bulk_insert_rows(_user_rows(1))
        PostRepository(uow.session).bulk_insert_rows_without_ids(
            [{"user_id": author_id, "title": f"Post {number}", "content": "text"} for number in range(1500)]
        )

    counts = db_session.execute(
        select(Post.user_id, func.count(), func.min(Post.version)).group_by(Post.user_id)
    )
    assert [tuple(row) for row in counts] == [(author_id, 1500, 1)]


def test_bulk_insert_without_ids_sends_one_statement_per_thousand_rows(database: Database) -> None:
    with unit_of_work(database) as uow:
        (author_id,) = UserRepository(uow.session).bulk_insert_rows(_user_rows(1))
    rows = [{"user_id": author_id, "title": f"Post {number}"} for number in range(2500)]

    with count_statements(database) as log, unit_of_work(database) as uow:
        PostRepository(uow.session).bulk_insert_rows_without_ids(rows)

    assert log.count <= 3


def test_bulk_insert_of_no_rows_sends_nothing(database: Database) -> None:
    with count_statements(database) as log, unit_of_work(database) as uow:
        ids = UserRepository(uow.session).bulk_insert_rows([])
        PostRepository(uow.session).bulk_insert_rows_without_ids([])

    assert ids == []
    assert log.count == 0
