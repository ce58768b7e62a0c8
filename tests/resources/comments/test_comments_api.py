"""The comments routes (and /posts/{id}/comments), on a real database."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser
from tests.support.statements import count_statements
from webapp.core.db import Database
from webapp.resources.comments.model import Comment


@pytest.fixture
def author(create_user: Any) -> CreatedUser:
    user: CreatedUser = create_user(full_name="Ada Lovelace")
    return user


@pytest.fixture
def post(client: FlaskClient, author: CreatedUser) -> dict[str, Any]:
    response = client.post(
        "/api/v1/posts", json={"title": "Notes", "content": "On engines"}, headers=author.auth
    )
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _comment(client: FlaskClient, post_id: int, user: CreatedUser, body: str = "Nice.") -> dict[str, Any]:
    response = client.post(f"/api/v1/posts/{post_id}/comments", json={"body": body}, headers=user.auth)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def _stored(session: Session, comment_id: int) -> Comment:
    comment = session.get(Comment, comment_id)
    assert comment is not None
    session.refresh(comment)
    return comment


def test_commenting_answers_201_with_location_etag_and_the_caller_as_author(
    client: FlaskClient, post: dict[str, Any], create_user: Any
) -> None:
    reader: CreatedUser = create_user(full_name="Charles Babbage")

    response = client.post(
        f"/api/v1/posts/{post['id']}/comments", json={"body": "Nice."}, headers=reader.auth
    )

    body = response.get_json()
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/v1/comments/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["post_id"] == post["id"]
    assert body["user_id"] == reader["id"]
    assert body["author"] == {"id": reader["id"], "full_name": "Charles Babbage"}
    assert body["body"] == "Nice."
    assert body["version"] == 1
    assert client.get(body_url := f"/api/v1/comments/{body['id']}").get_json() == body, body_url


def test_commenting_needs_a_token_and_writes_nothing_without_one(
    client: FlaskClient, post: dict[str, Any], db_session: Session
) -> None:
    response = client.post(f"/api/v1/posts/{post['id']}/comments", json={"body": "Anonymous"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert db_session.scalar(select(func.count()).select_from(Comment)) == 0


def test_commenting_on_a_missing_or_deleted_post_is_404(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser
) -> None:
    assert (
        client.post("/api/v1/posts/424242/comments", json={"body": "x"}, headers=author.auth).status_code
        == 404
    )
    deleted = client.delete(f"/api/v1/posts/{post['id']}", headers=author.writing(post["version"]))
    assert deleted.status_code == 204

    response = client.post(f"/api/v1/posts/{post['id']}/comments", json={"body": "x"}, headers=author.auth)

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": "x" * 10_001}, "body"),
        ({}, "body"),
        ({"body": "ok", "user_id": 1}, "user_id"),
        ({"body": "ok", "post_id": 2}, "post_id"),
        ({"body": "ok", "version": 5}, "version"),
        ({"body": "nul \x00 inside"}, "body"),
    ],
)
def test_invalid_or_server_owned_fields_are_422_and_write_nothing(  # noqa: PLR0917
    client: FlaskClient,
    post: dict[str, Any],
    author: CreatedUser,
    db_session: Session,
    payload: dict[str, Any],
    field: str,
) -> None:
    response = client.post(f"/api/v1/posts/{post['id']}/comments", json=payload, headers=author.auth)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert db_session.scalar(select(func.count()).select_from(Comment)) == 0


def test_a_body_of_10000_characters_is_accepted(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser
) -> None:
    assert _comment(client, post["id"], author, "x" * 10_000)["body"] == "x" * 10_000


def test_get_honours_if_none_match_and_404s_a_missing_comment(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser
) -> None:
    comment = _comment(client, post["id"], author)

    not_modified = client.get(f"/api/v1/comments/{comment['id']}", headers={"If-None-Match": '"1"'})

    assert not_modified.status_code == 304
    assert not_modified.data == b""
    assert client.get("/api/v1/comments/424242").status_code == 404


def test_the_author_changes_a_comment_with_if_match_and_the_version_moves_on(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser
) -> None:
    comment = _comment(client, post["id"], author)

    response = client.patch(
        f"/api/v1/comments/{comment['id']}", json={"body": "Edited."}, headers=author.writing(1)
    )

    assert response.status_code == 200
    assert response.get_json()["body"] == "Edited."
    assert response.get_json()["version"] == 2
    assert response.headers["ETag"] == '"2"'


def test_a_change_without_if_match_is_428_and_a_stale_one_412(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser, db_session: Session
) -> None:
    comment = _comment(client, post["id"], author)
    url = f"/api/v1/comments/{comment['id']}"

    missing = client.patch(url, json={"body": "Blind"}, headers=author.auth)
    stale = client.patch(url, json={"body": "Stale"}, headers=author.writing(7))
    delete_missing = client.delete(url, headers=author.auth)

    assert missing.status_code == 428
    assert stale.status_code == 412
    assert delete_missing.status_code == 428
    stored = _stored(db_session, comment["id"])
    assert (stored.body, stored.version, stored.deleted_at) == ("Nice.", 1, None)


def test_another_users_token_cannot_change_or_delete_a_comment(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser, create_user: Any, db_session: Session
) -> None:
    comment = _comment(client, post["id"], author)
    stranger: CreatedUser = create_user()
    url = f"/api/v1/comments/{comment['id']}"

    patched = client.patch(url, json={"body": "Hijacked"}, headers=stranger.writing(1))
    deleted = client.delete(url, headers=stranger.writing(1))

    assert patched.status_code == 403
    assert deleted.status_code == 403
    stored = _stored(db_session, comment["id"])
    assert (stored.body, stored.version, stored.deleted_at) == ("Nice.", 1, None)


def test_an_admin_may_change_anyones_comment(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser, admin_user: CreatedUser
) -> None:
    comment = _comment(client, post["id"], author)

    response = client.patch(
        f"/api/v1/comments/{comment['id']}", json={"body": "Moderated."}, headers=admin_user.writing(1)
    )

    assert response.status_code == 200
    assert response.get_json()["user_id"] == author["id"]


def test_delete_is_soft_and_bumps_the_version(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser, db_session: Session
) -> None:
    comment = _comment(client, post["id"], author)

    response = client.delete(f"/api/v1/comments/{comment['id']}", headers=author.writing(1))

    assert response.status_code == 204
    assert client.get(f"/api/v1/comments/{comment['id']}").status_code == 404
    stored = _stored(db_session, comment["id"])
    assert stored.deleted_at is not None
    assert stored.version == 2


def test_a_posts_comments_are_listed_with_their_authors_in_order(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser, create_user: Any
) -> None:
    other: CreatedUser = create_user(full_name="Mary Somerville")
    first = _comment(client, post["id"], author, "first")
    second = _comment(client, post["id"], other, "second")
    other_post = client.post("/api/v1/posts", json={"title": "Elsewhere"}, headers=other.auth).get_json()
    _comment(client, other_post["id"], other, "not on this post")

    ascending = client.get(f"/api/v1/posts/{post['id']}/comments").get_json()
    descending = client.get(f"/api/v1/posts/{post['id']}/comments?sort=-created_at").get_json()

    assert [item["id"] for item in ascending["items"]] == [first["id"], second["id"]]
    assert [item["id"] for item in descending["items"]] == [second["id"], first["id"]]
    assert ascending["items"][1]["author"] == {"id": other["id"], "full_name": "Mary Somerville"}
    assert ascending["meta"]["total"] == 2


def test_listing_the_comments_of_a_missing_or_deleted_post_is_404(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser
) -> None:
    assert client.get("/api/v1/posts/424242/comments").status_code == 404
    client.delete(f"/api/v1/posts/{post['id']}", headers=author.writing(post["version"]))

    assert client.get(f"/api/v1/posts/{post['id']}/comments").status_code == 404


def test_the_comment_list_rejects_unknown_sort_keys_and_parameters(
    client: FlaskClient, post: dict[str, Any]
) -> None:
    bad_sort = client.get(f"/api/v1/posts/{post['id']}/comments?sort=body")
    unknown = client.get(f"/api/v1/posts/{post['id']}/comments?user_id=1")

    assert bad_sort.status_code == 400
    assert "created_at" in bad_sort.get_json()["detail"]
    assert unknown.status_code == 400


def test_a_cursor_walk_visits_every_comment_once(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser
) -> None:
    made = [_comment(client, post["id"], author, f"c{n}")["id"] for n in range(7)]

    seen: list[int] = []
    url = f"/api/v1/posts/{post['id']}/comments?per_page=3&sort=-created_at&cursor="
    page = client.get(f"/api/v1/posts/{post['id']}/comments?per_page=3&sort=-created_at").get_json()
    while True:
        seen.extend(item["id"] for item in page["items"])
        if page["meta"]["next_cursor"] is None:
            break
        page = client.get(url + page["meta"]["next_cursor"]).get_json()

    assert seen == list(reversed(made))


def test_listing_comments_costs_the_same_statements_for_1_and_30_comments(
    client: FlaskClient, database: Database, post: dict[str, Any], author: CreatedUser, create_user: Any
) -> None:
    _comment(client, post["id"], author)
    url = f"/api/v1/posts/{post['id']}/comments?per_page=50"
    with count_statements(database) as one:
        client.get(url)
    for _ in range(29):
        _comment(client, post["id"], create_user())  # 29 different authors: no per-row author load

    with count_statements(database) as many:
        listed = client.get(url).get_json()["items"]

    assert len(listed) == 30
    # The post's existence, the COUNT, and the page with its authors joined in.
    assert one.count == many.count == 3


def test_a_retried_comment_with_one_idempotency_key_is_written_once(
    client: FlaskClient, post: dict[str, Any], author: CreatedUser, db_session: Session
) -> None:
    headers = {**author.auth, "Idempotency-Key": "comment-1"}
    url = f"/api/v1/posts/{post['id']}/comments"

    first = client.post(url, json={"body": "Once"}, headers=headers)
    again = client.post(url, json={"body": "Once"}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert db_session.scalar(select(func.count()).select_from(Comment)) == 1
