"""The users routes, through the test client, on a real database."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser
from webapp.core import passwords
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User

USER_FIELDS = {
    "id",
    "email",
    "email_verified",
    "pending_email",
    "full_name",
    "is_active",
    "version",
    "created_at",
    "updated_at",
}


def test_create_user_returns_201_with_location_etag_and_no_password(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    response = client.post("/api/v1/users", json={**user_payload, "email": "Ada@Example.COM"})

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert body["email"] == "ada@example.com"
    assert body["version"] == 1
    assert response.headers["Location"] == f"/api/v1/users/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["created_at"].endswith("+00:00")
    stored = db_session.get(User, body["id"])
    assert stored is not None
    assert stored.hashed_password != user_payload["password"]


def test_duplicate_email_case_insensitive_is_409_and_writes_nothing(
    client: FlaskClient, user_payload: dict[str, str], db_session: Session
) -> None:
    assert client.post("/api/v1/users", json=user_payload).status_code == 201

    response = client.post("/api/v1/users", json={**user_payload, "email": "ADA@example.com"})

    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["detail"] == "A user with this email already exists."
    assert "errors" not in body  # only 422 and field-level 400s carry per-field errors
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


def test_unknown_and_server_owned_fields_are_422(client: FlaskClient, user_payload: dict[str, str]) -> None:
    for extra in ({"id": 5}, {"version": 3}, {"hashed_password": "x"}, {"nickname": "ada"}):
        response = client.post("/api/v1/users", json={**user_payload, **extra})
        assert response.status_code == 422, extra
        assert set(response.get_json()["errors"]) == set(extra)


def test_invalid_fields_are_422_with_messages(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/users", json={"email": "not-an-email", "full_name": "", "password": "short"}
    )

    assert response.status_code == 422
    body = response.get_json()
    assert body["title"] == "Unprocessable Content"
    assert set(body["errors"]) == {"email", "full_name", "password"}


def test_get_user(client: FlaskClient, create_user: Any) -> None:
    user = create_user()

    response = client.get(f"/api/v1/users/{user['id']}", headers=user.auth)

    assert response.status_code == 200
    assert response.get_json() == user
    assert response.headers["ETag"] == '"1"'


def test_get_missing_user_is_404_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/users/424242")

    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.get_json()["status"] == 404


def test_patch_updates_fields_and_bumps_version(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    user = create_user()

    response = client.patch(
        f"/api/v1/users/{user['id']}",
        json={"full_name": "Countess", "is_active": False},
        headers=user.writing(user["version"]),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["full_name"] == "Countess"
    assert body["is_active"] is False
    assert body["version"] == 2
    assert response.headers["ETag"] == '"2"'
    # Deactivated, the user's own tokens are revoked: an admin reads the full representation.
    assert client.get(f"/api/v1/users/{user['id']}", headers=admin_user.auth).get_json() == body


def test_patch_with_stale_if_match_is_412_and_changes_nothing(client: FlaskClient, create_user: Any) -> None:
    user = create_user()
    first = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "First"}, headers=user.writing(user["version"])
    )
    assert first.status_code == 200

    response = client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "Second"}, headers={**user.auth, "If-Match": '"1"'}
    )

    assert response.status_code == 412
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["full_name"] == "First"


def test_get_with_matching_if_none_match_is_304(client: FlaskClient, create_user: Any) -> None:
    user = create_user()

    response = client.get(f"/api/v1/users/{user['id']}", headers={"If-None-Match": '"1"'})

    assert response.status_code == 304
    assert response.headers["ETag"] == '"1"'


def test_delete_soft_deletes_user_and_posts_and_frees_email(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    user = create_user(email="gone@example.com")
    db_session.add(Post(user_id=user["id"], title="t", content="c"))
    db_session.commit()

    response = client.delete(f"/api/v1/users/{user['id']}", headers=user.writing(user["version"]))

    assert response.status_code == 204
    assert client.get(f"/api/v1/users/{user['id']}").status_code == 404
    db_session.expire_all()
    stored = db_session.get(User, user["id"])
    assert stored is not None
    assert stored.deleted_at is not None
    posts = db_session.scalars(select(Post).where(Post.user_id == user["id"])).all()
    assert posts
    assert all(post.deleted_at is not None for post in posts)
    again = client.post(
        "/api/v1/users", json={"email": "GONE@example.com", "full_name": "Back", "password": "password123"}
    )
    assert again.status_code == 201


def test_bulk_create_is_all_or_nothing(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser, db_session: Session
) -> None:
    create_user(email="taken@example.com")
    items = [
        {"email": "new1@example.com", "full_name": "New 1", "password": "password123"},
        {"email": "taken@example.com", "full_name": "Dup", "password": "password123"},
    ]

    response = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)

    assert response.status_code == 409
    assert "items 1 " in response.get_json()["detail"]
    assert db_session.scalar(select(func.count()).select_from(User)) == 2  # taken@ and the admin


def test_bulk_create_with_one_invalid_item_is_422_and_writes_nothing(
    client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    items = [
        {"email": "ok@example.com", "full_name": "Ok", "password": "password123"},
        {"email": "bad", "full_name": "Bad", "password": "password123"},
    ]

    response = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)

    assert response.status_code == 422
    assert response.get_json()["errors"] == {"items.1.email": ["Not a valid email address."]}
    assert db_session.scalar(select(func.count()).select_from(User)) == 1  # only the admin


def test_bulk_create_writes_every_item(
    client: FlaskClient, admin_user: CreatedUser, db_session: Session
) -> None:
    items = [
        {"email": f"bulk{n}@example.com", "full_name": f"Bulk {n}", "password": "password123"}
        for n in range(50)
    ]

    response = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)

    assert response.status_code == 201
    created = response.get_json()["items"]
    assert [item["email"] for item in created] == [item["email"] for item in items]
    assert db_session.scalar(select(func.count()).select_from(User)) == 51  # the 50 and the admin


def test_bulk_create_answers_each_user_as_a_get_of_it_does(
    client: FlaskClient, admin_user: CreatedUser
) -> None:
    # The bulk answer is dumped from rows of a few columns, a GET from the ORM object.
    items = [
        {"email": f"Same{n}@Example.com", "full_name": f"Same {n}", "password": "password123"}
        for n in (3, 1, 2)
    ]

    created = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth).get_json()

    fetched = [
        client.get(f"/api/v1/users/{user['id']}", headers=admin_user.auth).get_json()
        for user in created["items"]
    ]
    assert list(created) == ["items"]
    assert created["items"] == fetched
    assert [user["email"] for user in fetched] == [
        "same3@example.com",
        "same1@example.com",
        "same2@example.com",
    ]


def test_bulk_create_rejects_duplicates_within_the_batch(
    client: FlaskClient, admin_user: CreatedUser
) -> None:
    item = {"email": "twice@example.com", "full_name": "Twice", "password": "password123"}

    response = client.post(
        "/api/v1/users/bulk",
        json={"items": [item, {**item, "email": "TWICE@example.com"}]},
        headers=admin_user.auth,
    )

    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"items.0.email", "items.1.email"}


def test_list_users_offset_pagination(client: FlaskClient, create_user: Any) -> None:
    users = [create_user() for _ in range(5)]

    first = client.get("/api/v1/users?per_page=2").get_json()
    third = client.get("/api/v1/users?per_page=2&page=3").get_json()

    assert [u["id"] for u in first["items"]] == [users[0]["id"], users[1]["id"]]
    assert first["meta"]["total"] == 5
    assert first["meta"]["page"] == 1
    assert first["meta"]["per_page"] == 2
    assert [u["id"] for u in third["items"]] == [users[4]["id"]]
    assert third["meta"]["next_cursor"] is None


def test_list_users_filters(client: FlaskClient, create_user: Any, admin_user: CreatedUser) -> None:
    ada = create_user(email="ada@example.com", full_name="Ada Lovelace")
    grace = create_user(email="grace@example.com", full_name="Grace Hopper")
    deactivated = client.patch(
        f"/api/v1/users/{ada['id']}", json={"is_active": False}, headers=ada.writing(ada["version"])
    )
    assert deactivated.status_code == 200

    def ids(query: str) -> list[int]:
        # As an admin: the email filter is theirs only.
        response = client.get(f"/api/v1/users?{query}", headers=admin_user.auth)
        assert response.status_code == 200, response.get_json()
        return [u["id"] for u in response.get_json()["items"]]

    assert ids("email=ADA@example.com") == [ada["id"]]
    assert ids("q=LOVE") == [ada["id"]]
    assert ids("is_active=false") == [ada["id"]]
    assert sorted(ids("is_active=true")) == sorted([grace["id"], admin_user["id"]])
    assert ids("q=%25") == []  # a literal %, not a wildcard


def test_list_users_sort_descending(client: FlaskClient, create_user: Any, admin_user: CreatedUser) -> None:
    create_user(email="b@example.com")
    create_user(email="a@example.com")
    create_user(email="c@example.com")

    # Emails are listed to admins only; the admin is one of the users.
    items = client.get("/api/v1/users?sort=-email", headers=admin_user.auth).get_json()["items"]

    assert [u["email"] for u in items] == [
        "c@example.com",
        "b@example.com",
        "admin@example.com",
        "a@example.com",
    ]


def test_list_rejects_bad_query_parameters(client: FlaskClient) -> None:
    for query in ("sort=password", "page=0", "per_page=101", "page=x", "is_active=yes", "bogus=1"):
        response = client.get(f"/api/v1/users?{query}")
        assert response.status_code == 400, query
        assert response.content_type == "application/problem+json"


def test_delete_answers_204_without_a_body_or_content_type(client: FlaskClient, create_user: Any) -> None:
    user = create_user()

    response = client.delete(f"/api/v1/users/{user['id']}", headers=user.writing(user["version"]))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("key", [None, "bulk-key-1"], ids=["no key", "Idempotency-Key"])
def test_bulk_create_hashes_every_password_before_its_first_statement(
    client: FlaskClient,
    admin_user: CreatedUser,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
) -> None:
    # No transaction (and on SQLite no write lock) may be held while scrypt runs.
    hashed: list[str] = []
    real = passwords.hash_password

    def counting_hash(password: str, method: str) -> str:
        hashed.append(password)
        return real(password, method)

    monkeypatch.setattr(passwords, "hash_password", counting_hash)
    hashes_done_at_statement: list[int] = []

    def on_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # The token lookup runs before, on a read session of its own that holds no write
        # lock (a DEFERRED transaction on SQLite, autocommit on PostgreSQL): not the
        # request's transaction, which is what must not be open while hashing.
        if "access_tokens" in statement or statement.startswith("BEGIN DEFERRED"):
            return
        hashes_done_at_statement.append(len(hashed))

    items = [{"email": f"h{n}@example.com", "full_name": "H", "password": "password123"} for n in range(12)]
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        # With a key, its lock and lookup wait for the write transaction too: a keyed bulk
        # create once held a transaction open while hashing (killed after 60 s idle).
        headers = {**admin_user.auth, **({"Idempotency-Key": key} if key else {})}
        response = client.post("/api/v1/users/bulk", json={"items": items}, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)

    assert response.status_code == 201
    assert hashes_done_at_statement
    assert hashes_done_at_statement[0] == 12


def test_deleting_a_user_bumps_the_version_of_their_posts(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    # The bump makes a concurrent PATCH of one of those posts fail (stale version)
    # instead of writing to a post that has just been deleted.
    user = create_user()
    post = client.post(
        f"/api/v1/users/{user['id']}/posts", json={"title": "t", "content": ""}, headers=user.auth
    ).get_json()

    assert (
        client.delete(f"/api/v1/users/{user['id']}", headers=user.writing(user["version"])).status_code == 204
    )

    stored = db_session.get(Post, post["id"])
    assert stored is not None
    assert stored.version == post["version"] + 1
