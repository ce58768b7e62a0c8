"""Soft delete cascades as the models declare them: one transaction, one UPDATE per table."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser
from tests.support.statements import count_statements
from webapp.core.auth import Principal
from webapp.core.db import Base, Database
from webapp.core.db.declarations import cascading_children
from webapp.resources.comments.model import Comment
from webapp.resources.comments.service import CommentService
from webapp.resources.posts.model import Post
from webapp.resources.users.service import UserService


def _post(client: FlaskClient, user: CreatedUser, title: str = "t") -> dict[str, Any]:
    response = client.post("/api/v1/posts", json={"title": title}, headers=user.auth)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _comment(client: FlaskClient, post_id: int, user: CreatedUser) -> dict[str, Any]:
    response = client.post(f"/api/v1/posts/{post_id}/comments", json={"body": "b"}, headers=user.auth)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _cascade_from(table: str) -> set[str]:
    """The table and every table a soft delete of its rows reaches (``soft_delete_cascade()``)."""
    children = cascading_children(Base.metadata)
    reached, waiting = set(), [Base.metadata.tables[table]]
    while waiting:
        parent = waiting.pop()
        if parent.name not in reached:
            reached.add(parent.name)
            waiting.extend(child for child, _column in children.get(parent, ()))
    return reached


def _live_comment_ids(session: Session) -> set[int]:
    return set(session.scalars(select(Comment.id).where(Comment.deleted_at.is_(None))))


def test_deleting_a_post_soft_deletes_its_comments_and_bumps_their_versions(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    bob: CreatedUser = create_user()
    doomed = _post(client, ada)
    kept = _post(client, ada)
    on_doomed = [_comment(client, doomed["id"], ada), _comment(client, doomed["id"], bob)]
    on_kept = _comment(client, kept["id"], bob)

    assert client.delete(f"/api/v1/posts/{doomed['id']}", headers=ada.writing(1)).status_code == 204

    assert _live_comment_ids(db_session) == {on_kept["id"]}
    for comment in on_doomed:
        stored = db_session.get(Comment, comment["id"])
        assert stored is not None
        assert stored.version == 2
        assert client.get(f"/api/v1/comments/{comment['id']}").status_code == 404


def test_deleting_a_user_takes_their_posts_the_comments_on_them_and_their_own_comments(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    bob: CreatedUser = create_user()
    adas_post = _post(client, ada)
    bobs_post = _post(client, bob)
    bob_on_adas = _comment(client, adas_post["id"], bob)  # goes: the post goes
    ada_on_bobs = _comment(client, bobs_post["id"], ada)  # goes: her own
    bob_on_bobs = _comment(client, bobs_post["id"], bob)  # stays

    assert client.delete(f"/api/v1/users/{ada['id']}", headers=ada.writing(1)).status_code == 204

    assert _live_comment_ids(db_session) == {bob_on_bobs["id"]}
    gone = db_session.get(Post, adas_post["id"])
    assert gone is not None
    assert gone.deleted_at is not None
    assert {bob_on_adas["id"], ada_on_bobs["id"]}.isdisjoint(_live_comment_ids(db_session))


def test_a_users_delete_is_one_statement_per_table_whatever_they_wrote(
    client: FlaskClient, create_user: Any, database: Database
) -> None:
    def delete_with(posts: int, comments_per_post: int) -> list[str]:
        user: CreatedUser = create_user()
        for _ in range(posts):
            post = _post(client, user)
            for _ in range(comments_per_post):
                _comment(client, post["id"], user)
        with count_statements(database) as log:
            response = client.delete(f"/api/v1/users/{user['id']}", headers=user.writing(1))
        assert response.status_code == 204
        return [sql.split()[0] + " " + sql.split()[1] for sql in log.statements]

    small = delete_with(1, 1)
    large = delete_with(4, 5)

    assert small == large
    updates = [statement for statement in large if statement.startswith("UPDATE")]
    # One per table the declared cascade reaches, whichever resources declare one.
    reached = _cascade_from("users")
    assert {"users", "posts", "comments"} <= reached
    assert sorted(updates) == sorted(f"UPDATE {table}" for table in reached)


def test_a_delete_that_fails_leaves_every_table_as_it_was(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    post = _post(client, ada)
    comment = _comment(client, post["id"], ada)

    stale = client.delete(f"/api/v1/users/{ada['id']}", headers=ada.writing(99))

    assert stale.status_code == 412
    assert _live_comment_ids(db_session) == {comment["id"]}
    stored = db_session.get(Post, post["id"])
    assert stored is not None
    assert stored.deleted_at is None


@pytest.mark.postgres_only(reason="SQLite serializes writers: the two transactions cannot overlap")
def test_a_comment_racing_its_authors_deletion_goes_with_the_author(
    client: FlaskClient, create_user: Any, database: Database, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    bob: CreatedUser = create_user()
    post = _post(client, ada)
    commenting = database.new_session()
    # Bob's comment is written (not yet committed) while his delete starts elsewhere.
    comment = CommentService(commenting).create(
        post["id"], {"body": "racing"}, Principal(bob["id"], False, 0)
    )
    finished: list[bool] = []

    def delete_bob() -> None:
        with database.new_session() as deleting:
            UserService(deleting).delete(bob["id"], None, Principal(bob["id"], False, 0))
            deleting.commit()
        finished.append(True)

    deleter = threading.Thread(target=delete_bob)
    deleter.start()
    deleter.join(timeout=1)
    waited_for_the_comment = not finished
    commenting.commit()
    commenting.close()
    deleter.join(timeout=10)

    assert waited_for_the_comment  # the author's row is locked FOR SHARE until the comment commits
    stored = db_session.get(Comment, comment.id)
    assert stored is not None
    assert stored.deleted_at is not None
