"""The posts routes (and /users/{id}/posts), on a real database."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser
from tests.support.server import LiveServer
from webapp.resources.posts.model import Post

POST_FIELDS = {"id", "title", "content", "user_id", "author", "version", "created_at", "updated_at"}


@pytest.fixture
def author(create_user: Any) -> CreatedUser:
    user: CreatedUser = create_user(full_name="Ada Lovelace")
    return user


@pytest.fixture
def create_post(client: FlaskClient, author: CreatedUser):
    """A post by ``by`` (the author unless told), written with that user's token."""

    def create(by: CreatedUser | None = None, **fields: object) -> dict[str, Any]:
        writer = by or author
        payload = {"title": "Notes", "content": "On the engine", "user_id": writer["id"], **fields}
        response = client.post("/api/v1/posts", json=payload, headers=writer.auth)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return create


def _post_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Post)) or 0


def _ids(client: FlaskClient, url: str) -> list[int]:
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_create_post_returns_201_with_location_etag_and_embedded_author(
    client: FlaskClient, author: CreatedUser
) -> None:
    response = client.post(
        "/api/v1/posts",
        json={"title": "Hello", "content": "First", "user_id": author["id"]},
        headers=author.auth,
    )

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == POST_FIELDS
    assert body["title"] == "Hello"
    assert body["content"] == "First"
    assert body["user_id"] == author["id"]
    assert body["author"] == {"id": author["id"], "full_name": "Ada Lovelace"}
    assert body["version"] == 1
    assert body["created_at"].endswith("+00:00")
    assert response.headers["Location"] == f"/api/v1/posts/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert client.get(response.headers["Location"]).get_json() == body


def test_create_post_without_content_stores_an_empty_body(client: FlaskClient, author: CreatedUser) -> None:
    response = client.post(
        "/api/v1/posts", json={"title": "Only a title", "user_id": author["id"]}, headers=author.auth
    )

    assert response.status_code == 201
    assert response.get_json()["content"] == ""


def test_create_post_for_a_missing_user_is_422_on_user_id(
    client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    # Only an admin may name another author, so only an admin's post reaches the lookup.
    response = client.post(
        "/api/v1/posts", json={"title": "t", "content": "c", "user_id": 424242}, headers=admin_user.auth
    )

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert set(response.get_json()["errors"]) == {"user_id"}
    assert _post_count(db_session) == 0


def test_create_post_for_a_deleted_user_is_422(
    client: FlaskClient, author: CreatedUser, admin_user: CreatedUser, db_session: Session
) -> None:
    assert (
        client.delete(f"/api/v1/users/{author['id']}", headers=author.writing(author["version"])).status_code
        == 204
    )

    # The deleted author's tokens are revoked: only an admin can still name them.
    response = client.post(
        "/api/v1/posts", json={"title": "t", "content": "c", "user_id": author["id"]}, headers=admin_user.auth
    )

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"user_id"}
    assert _post_count(db_session) == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"id": 5},
        {"version": 3},
        {"created_at": "2026-01-01T00:00:00+00:00"},
        {"updated_at": "2026-01-01T00:00:00+00:00"},
        {"deleted_at": None},
        {"author": {"id": 1, "full_name": "x"}},
        {"tags": ["x"]},
    ],
)
def test_unknown_and_server_owned_fields_on_create_are_422(
    client: FlaskClient, author: CreatedUser, db_session: Session, extra: dict[str, Any]
) -> None:
    payload = {"title": "t", "content": "c", "user_id": author["id"], **extra}

    response = client.post("/api/v1/posts", json=payload, headers=author.auth)

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == set(extra)
    assert _post_count(db_session) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": None}, "title"),
        ({"title": 7}, "title"),
        ({"title": "nul\u0000byte"}, "title"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": None}, "content"),
        ({"user_id": "1"}, "user_id"),
        ({"user_id": True}, "user_id"),
        ({"user_id": 1.5}, "user_id"),
        ({"user_id": 2**31}, "user_id"),
        ({"user_id": 0}, "user_id"),
        ({"user_id": -1}, "user_id"),
    ],
)
def test_invalid_post_fields_are_422(
    client: FlaskClient, author: CreatedUser, change: dict[str, Any], field: str
) -> None:
    payload = {"title": "t", "content": "c", "user_id": author["id"], **change}

    response = client.post("/api/v1/posts", json=payload, headers=author.auth)

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {field}


def test_create_post_accepts_the_limits(client: FlaskClient, author: CreatedUser) -> None:
    response = client.post(
        "/api/v1/posts",
        json={"title": "x" * 200, "content": "y" * 100_000, "user_id": author["id"]},
        headers=author.auth,
    )

    assert response.status_code == 201


def test_missing_required_fields_are_422(client: FlaskClient, author: CreatedUser) -> None:
    response = client.post("/api/v1/posts", json={}, headers=author.auth)

    assert response.status_code == 422
    # user_id is not required: it defaults to the caller.
    assert set(response.get_json()["errors"]) == {"title"}


def test_create_post_body_errors(client: FlaskClient, author: CreatedUser) -> None:
    auth = author.auth
    assert (
        client.post("/api/v1/posts", data="{", content_type="application/json", headers=auth).status_code
        == 400
    )
    assert client.post("/api/v1/posts", json=["not", "an", "object"], headers=auth).status_code == 400
    assert (
        client.post("/api/v1/posts", data="title=x", content_type="text/plain", headers=auth).status_code
        == 415
    )


def test_get_post_with_etag_and_if_none_match(client: FlaskClient, create_post: Any) -> None:
    post = create_post()

    response = client.get(f"/api/v1/posts/{post['id']}")
    cached = client.get(f"/api/v1/posts/{post['id']}", headers={"If-None-Match": '"1"'})

    assert response.status_code == 200
    assert response.get_json() == post
    assert response.headers["ETag"] == '"1"'
    assert cached.status_code == 304
    assert cached.headers["ETag"] == '"1"'


def test_get_missing_post_is_404_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/posts/424242")

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_unsupported_method_is_405_with_allow(client: FlaskClient, create_post: Any) -> None:
    response = client.put(f"/api/v1/posts/{create_post()['id']}", json={})

    assert response.status_code == 405
    assert response.content_type == "application/problem+json"
    assert {"GET", "PATCH", "DELETE"} <= set(response.headers["Allow"].replace(" ", "").split(","))


def test_patch_updates_title_and_content_and_bumps_version(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()

    response = client.patch(
        f"/api/v1/posts/{post['id']}",
        json={"title": "Renamed", "content": "New"},
        headers=author.writing(post["version"]),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "Renamed"
    assert body["content"] == "New"
    assert body["version"] == 2
    assert body["author"] == post["author"]
    assert response.headers["ETag"] == '"2"'
    assert client.get(f"/api/v1/posts/{post['id']}").get_json() == body


def test_patch_cannot_move_a_post_to_another_user(
    client: FlaskClient, create_post: Any, create_user: Any, author: CreatedUser
) -> None:
    post = create_post()
    other = create_user()

    response = client.patch(
        f"/api/v1/posts/{post['id']}",
        json={"user_id": other["id"], "title": "Moved"},
        headers=author.writing(post["version"]),
    )

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"user_id"}
    assert client.get(f"/api/v1/posts/{post['id']}").get_json() == post


@pytest.mark.parametrize("field", ["id", "version", "created_at", "updated_at", "deleted_at", "author"])
def test_patch_rejects_server_owned_fields(
    client: FlaskClient, create_post: Any, author: CreatedUser, field: str
) -> None:
    post = create_post()

    response = client.patch(
        f"/api/v1/posts/{post['id']}", json={field: 1}, headers=author.writing(post["version"])
    )

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {field}


def test_patch_with_invalid_title_is_422_and_changes_nothing(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()

    response = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": ""}, headers=author.writing(post["version"])
    )

    assert response.status_code == 422
    assert client.get(f"/api/v1/posts/{post['id']}").get_json() == post


def test_patch_with_stale_if_match_is_412_and_changes_nothing(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()
    first = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": "First"}, headers=author.writing(post["version"])
    )
    assert first.status_code == 200

    response = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": "Second"}, headers={**author.auth, "If-Match": '"1"'}
    )

    assert response.status_code == 412
    assert response.content_type == "application/problem+json"
    assert client.get(f"/api/v1/posts/{post['id']}").get_json()["title"] == "First"


def test_patch_with_current_if_match_succeeds(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()

    response = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": "Next"}, headers={**author.auth, "If-Match": '"1"'}
    )

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'


def test_patch_missing_post_is_404(client: FlaskClient, author: CreatedUser) -> None:
    assert (
        client.patch("/api/v1/posts/424242", json={"title": "x"}, headers=author.writing()).status_code == 404
    )


def test_delete_is_a_soft_delete(
    client: FlaskClient, create_post: Any, author: CreatedUser, db_session: Session
) -> None:
    post = create_post()
    known = author.writing(post["version"])

    response = client.delete(f"/api/v1/posts/{post['id']}", headers=known)

    assert response.status_code == 204
    assert client.get(f"/api/v1/posts/{post['id']}").status_code == 404
    assert client.patch(f"/api/v1/posts/{post['id']}", json={"title": "x"}, headers=known).status_code == 404
    assert client.delete(f"/api/v1/posts/{post['id']}", headers=known).status_code == 404
    assert _ids(client, "/api/v1/posts") == []
    stored = db_session.get(Post, post["id"])
    assert stored is not None
    assert stored.deleted_at is not None
    assert stored.version == 2


def test_delete_with_stale_if_match_is_412_and_keeps_the_post(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()
    edited = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": "Edited"}, headers=author.writing(post["version"])
    )
    assert edited.status_code == 200

    response = client.delete(f"/api/v1/posts/{post['id']}", headers={**author.auth, "If-Match": '"1"'})

    assert response.status_code == 412
    assert client.get(f"/api/v1/posts/{post['id']}").status_code == 200


def test_delete_with_current_if_match_succeeds(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()

    response = client.delete(f"/api/v1/posts/{post['id']}", headers={**author.auth, "If-Match": '"1"'})

    assert response.status_code == 204


def test_list_posts_embeds_authors(client: FlaskClient, create_post: Any) -> None:
    post = create_post()

    body = client.get("/api/v1/posts").get_json()

    assert body["items"] == [post]
    assert body["meta"] == {"per_page": 20, "next_cursor": None, "page": 1, "total": 1, "total_capped": False}


def test_list_posts_filters_by_user_id(client: FlaskClient, create_post: Any, create_user: Any) -> None:
    other = create_user()
    mine = create_post()
    theirs = create_post(by=other)

    assert _ids(client, f"/api/v1/posts?user_id={mine['user_id']}") == [mine["id"]]
    assert _ids(client, f"/api/v1/posts?user_id={other['id']}") == [theirs["id"]]
    assert _ids(client, "/api/v1/posts?user_id=424242") == []


def test_list_posts_filters_by_title_substring_case_insensitively(
    client: FlaskClient, create_post: Any
) -> None:
    engine = create_post(title="The Analytical Engine")
    create_post(title="Notes on Menabrea")
    percent = create_post(title="100% sure")
    underscore = create_post(title="snake_case")

    assert _ids(client, "/api/v1/posts?q=ANALYTICAL") == [engine["id"]]
    assert _ids(client, "/api/v1/posts?q=%25") == [percent["id"]]  # a literal %, not a wildcard
    assert _ids(client, "/api/v1/posts?q=e_c") == [underscore["id"]]  # a literal _
    assert _ids(client, "/api/v1/posts?q=nothing-like-this") == []


def test_list_posts_combines_filters(client: FlaskClient, create_post: Any, create_user: Any) -> None:
    other = create_user()
    wanted = create_post(title="Engine notes")
    create_post(title="Engine notes", by=other)
    create_post(title="Other")

    assert _ids(client, f"/api/v1/posts?user_id={wanted['user_id']}&q=engine") == [wanted["id"]]


@pytest.mark.parametrize(
    "query",
    [
        "user_id=abc",
        "user_id=0",
        "user_id=2147483648",
        "user_id=1.5",
        "q=",
        "author=1",
        "user_id=1&user_id=2",
    ],
)
def test_list_posts_rejects_bad_filters(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/posts?{query}")

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


def test_user_posts_lists_only_that_users_live_posts(
    client: FlaskClient, create_post: Any, create_user: Any, author: CreatedUser
) -> None:
    other = create_user()
    first = create_post(title="Alpha")
    second = create_post(title="Beta")
    create_post(by=other)
    assert (
        client.delete(f"/api/v1/posts/{second['id']}", headers=author.writing(second["version"])).status_code
        == 204
    )

    body = client.get(f"/api/v1/users/{author['id']}/posts").get_json()

    assert body["items"] == [first]
    assert body["meta"]["total"] == 1
    assert _ids(client, f"/api/v1/users/{author['id']}/posts?q=alp") == [first["id"]]
    assert _ids(client, f"/api/v1/users/{author['id']}/posts?q=beta") == []


def test_user_posts_of_a_missing_or_deleted_user_is_404(client: FlaskClient, author: CreatedUser) -> None:
    assert client.get("/api/v1/users/424242/posts").status_code == 404
    assert (
        client.delete(f"/api/v1/users/{author['id']}", headers=author.writing(author["version"])).status_code
        == 204
    )

    response = client.get(f"/api/v1/users/{author['id']}/posts")

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_user_posts_rejects_a_user_id_filter(client: FlaskClient, author: CreatedUser) -> None:
    assert client.get(f"/api/v1/users/{author['id']}/posts?user_id=1").status_code == 400


def test_create_user_post_uses_the_path_user_as_author(client: FlaskClient, author: CreatedUser) -> None:
    response = client.post(
        f"/api/v1/users/{author['id']}/posts", json={"title": "Mine", "content": "c"}, headers=author.auth
    )

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == POST_FIELDS
    assert body["user_id"] == author["id"]
    assert body["author"] == {"id": author["id"], "full_name": author["full_name"]}
    assert response.headers["Location"] == f"/api/v1/posts/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert _ids(client, f"/api/v1/users/{author['id']}/posts") == [body["id"]]


def test_create_user_post_rejects_a_user_id_in_the_body(
    client: FlaskClient, author: CreatedUser, db_session: Session
) -> None:
    response = client.post(
        f"/api/v1/users/{author['id']}/posts",
        json={"title": "t", "content": "c", "user_id": author["id"]},
        headers=author.auth,
    )

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"user_id"}
    assert _post_count(db_session) == 0


def test_create_user_post_for_a_missing_or_deleted_user_is_404(
    client: FlaskClient, author: CreatedUser, admin_user: CreatedUser, db_session: Session
) -> None:
    # Only an admin may post for another user (a deleted user's own tokens are revoked).
    admin = admin_user.auth
    assert client.post("/api/v1/users/424242/posts", json={"title": "t"}, headers=admin).status_code == 404
    assert (
        client.delete(f"/api/v1/users/{author['id']}", headers=author.writing(author["version"])).status_code
        == 204
    )

    response = client.post(f"/api/v1/users/{author['id']}/posts", json={"title": "t"}, headers=admin)

    assert response.status_code == 404
    assert _post_count(db_session) == 0


def test_deleting_a_user_hides_their_posts(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()

    assert (
        client.delete(f"/api/v1/users/{author['id']}", headers=author.writing(author["version"])).status_code
        == 204
    )

    assert client.get(f"/api/v1/posts/{post['id']}").status_code == 404
    assert _ids(client, "/api/v1/posts") == []


def test_q_treats_the_escape_character_literally(client: FlaskClient, create_post: Any) -> None:
    slash = create_post(title="either/or")
    create_post(title="either or")

    assert _ids(client, "/api/v1/posts?q=r%2Fo") == [slash["id"]]
    assert _ids(client, "/api/v1/posts?q=%2F%25") == []


def test_author_in_a_post_follows_the_users_current_name(
    client: FlaskClient, create_post: Any, author: CreatedUser
) -> None:
    post = create_post()
    renamed = client.patch(
        f"/api/v1/users/{author['id']}",
        json={"full_name": "Countess of Lovelace"},
        headers=author.writing(author["version"]),
    )
    assert renamed.status_code == 200

    assert (
        client.get(f"/api/v1/posts/{post['id']}").get_json()["author"]["full_name"] == "Countess of Lovelace"
    )
    assert client.get("/api/v1/posts").get_json()["items"][0]["author"]["full_name"] == "Countess of Lovelace"


def _wait_until_a_backend_waits_for_a_lock(engine: Engine) -> None:
    deadline = time.monotonic() + 10
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            if waiting:
                return
            # pg_stat_activity is a snapshot taken once per transaction: end it to look again.
            connection.rollback()
            time.sleep(0.02)
    raise AssertionError("the request never waited for the user's row lock")


def test_a_post_racing_its_authors_deletion_is_refused(
    live_server: LiveServer,
    author: CreatedUser,
    admin_user: CreatedUser,
    engine: Engine,
    db_session: Session,
) -> None:
    # The deletion has updated the user but not committed when the post arrives; the
    # post must wait for it and then see a deleted author, not write an orphan.
    # An admin posts for the author: the author's own token dies with the deletion (on
    # SQLite the request would be refused as 401 before it ever reached the author's row).
    body = {"title": "t", "content": "c", "user_id": author["id"]}
    with engine.connect() as deleting, ThreadPoolExecutor(1) as pool:
        transaction = deleting.begin()
        deleting.execute(
            text("UPDATE users SET deleted_at = :now, version = version + 1 WHERE id = :id"),
            {"now": datetime.now(UTC), "id": author["id"]},
        )
        try:
            pending = pool.submit(live_server.request, "POST", "/api/v1/posts", body, admin_user.auth)
            if engine.dialect.name == "postgresql":
                _wait_until_a_backend_waits_for_a_lock(engine)
            else:
                time.sleep(0.3)  # SQLite: the request waits for the write lock at BEGIN
            transaction.commit()
        finally:
            if transaction.is_active:
                transaction.rollback()
        response = pending.result(timeout=15)

    assert response.status == 422
    assert set(response.json()["errors"]) == {"user_id"}
    assert _post_count(db_session) == 0


def test_json_true_is_not_user_id_1(client: FlaskClient, create_user: Any) -> None:
    first = create_user()  # id 1 exists (and posts as itself), so a lenient parser would accept the post
    assert first["id"] == 1

    response = client.post(
        "/api/v1/posts", json={"title": "t", "content": "c", "user_id": True}, headers=first.auth
    )

    assert response.status_code == 422
    assert "user_id" in response.get_json()["errors"]
