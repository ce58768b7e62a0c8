"""Who may write what: tokens on every write, owner-only changes, admins, visible emails, If-Match.

Each refusal is checked for what it must not do too: write anything.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.support.auth import CreatedUser
from tests.support.operations import WRITES_NEEDING_A_TOKEN
from tests.support.statements import count_statements
from webapp.core.db import Database
from webapp.resources.posts.model import Post
from webapp.resources.users.model import User


def _post(client: FlaskClient, user: CreatedUser) -> dict[str, Any]:
    response = client.post("/api/v1/posts", json={"title": "Mine"}, headers=user.auth)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _count(session: Session, model: type[Any]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_writes_needing_a_token_are_found_in_the_app() -> None:
    assert {("POST", "/api/v1/posts"), ("DELETE", "/api/v1/tokens/current")} <= set(WRITES_NEEDING_A_TOKEN)
    assert ("POST", "/api/v1/users") not in WRITES_NEEDING_A_TOKEN  # sign-up is public


@pytest.mark.parametrize(("method", "path"), WRITES_NEEDING_A_TOKEN)
def test_every_write_without_a_token_is_401_with_a_challenge(
    client: FlaskClient, create_user: Any, method: str, path: str
) -> None:
    create_user()

    response = client.open(path, method=method, json={"title": "t"}, headers={"If-Match": "*"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.content_type == "application/problem+json"


def test_sign_up_and_sign_in_need_no_token(client: FlaskClient) -> None:
    payload = {"email": "new@example.com", "full_name": "New", "password": "password123"}

    assert client.post("/api/v1/users", json=payload).status_code == 201
    assert (
        client.post("/api/v1/tokens", json={"email": payload["email"], "password": "password123"}).status_code
        == 201
    )


def test_a_user_cannot_change_or_delete_another_user(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    mallory: CreatedUser = create_user()
    url = f"/api/v1/users/{ada['id']}"

    takeover = client.patch(
        url, json={"email": "mallory@evil.example", "password": "owned-you"}, headers=mallory.writing(1)
    )
    deletion = client.delete(url, headers=mallory.writing(1))

    assert takeover.status_code == 403
    assert deletion.status_code == 403
    stored = db_session.get(User, ada["id"])
    assert stored is not None
    assert (stored.email, stored.version, stored.deleted_at) == (ada["email"], 1, None)


def test_a_user_cannot_change_or_delete_another_users_post(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    mallory: CreatedUser = create_user()
    post = _post(client, ada)
    url = f"/api/v1/posts/{post['id']}"

    edit = client.patch(url, json={"title": "Defaced"}, headers=mallory.writing(1))
    deletion = client.delete(url, headers=mallory.writing(1))

    assert edit.status_code == 403
    assert deletion.status_code == 403
    stored = db_session.get(Post, post["id"])
    assert stored is not None
    assert (stored.title, stored.version, stored.deleted_at) == ("Mine", 1, None)


def test_an_admin_may_change_and_delete_anyone_and_anything(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    ada: CreatedUser = create_user()
    post = _post(client, ada)

    renamed = client.patch(
        f"/api/v1/users/{ada['id']}", json={"full_name": "Renamed"}, headers=admin_user.writing(1)
    )
    edited = client.patch(
        f"/api/v1/posts/{post['id']}", json={"title": "Edited"}, headers=admin_user.writing(1)
    )
    deleted = client.delete(f"/api/v1/users/{ada['id']}", headers=admin_user.writing(2))

    assert (renamed.status_code, edited.status_code, deleted.status_code) == (200, 200, 204)


def test_a_post_is_the_callers_and_naming_someone_else_is_403(
    client: FlaskClient, create_user: Any, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    bob: CreatedUser = create_user()

    own = client.post("/api/v1/posts", json={"title": "By me"}, headers=ada.auth)
    explicit = client.post("/api/v1/posts", json={"title": "By me", "user_id": ada["id"]}, headers=ada.auth)
    forged = client.post("/api/v1/posts", json={"title": "By Bob?", "user_id": bob["id"]}, headers=ada.auth)
    nested = client.post(f"/api/v1/users/{bob['id']}/posts", json={"title": "By Bob?"}, headers=ada.auth)

    assert own.status_code == 201
    assert own.get_json()["user_id"] == ada["id"]
    assert explicit.status_code == 201
    assert forged.status_code == 403
    assert nested.status_code == 403
    assert _count(db_session, Post) == 2


def test_an_admin_may_post_for_another_user(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    bob: CreatedUser = create_user()

    flat = client.post(
        "/api/v1/posts", json={"title": "For Bob", "user_id": bob["id"]}, headers=admin_user.auth
    )
    nested = client.post(
        f"/api/v1/users/{bob['id']}/posts", json={"title": "For Bob"}, headers=admin_user.auth
    )

    assert flat.status_code == nested.status_code == 201
    assert flat.get_json()["user_id"] == nested.get_json()["user_id"] == bob["id"]


def test_bulk_create_is_for_admins_only(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser, db_session: Session
) -> None:
    ada: CreatedUser = create_user()
    items = [{"email": f"bulk{n}@example.com", "full_name": "B", "password": "password123"} for n in range(3)]
    before = _count(db_session, User)

    refused = client.post("/api/v1/users/bulk", json={"items": items}, headers=ada.auth)
    accepted = client.post("/api/v1/users/bulk", json={"items": items}, headers=admin_user.auth)

    assert refused.status_code == 403
    assert accepted.status_code == 201
    db_session.rollback()  # a new snapshot: the first count's read transaction saw the old rows
    assert _count(db_session, User) == before + 3


def test_emails_are_shown_only_to_their_owner_and_admins(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    ada: CreatedUser = create_user()
    bob: CreatedUser = create_user()
    url = f"/api/v1/users/{ada['id']}"

    assert "email" not in client.get(url).get_json()
    assert "email" not in client.get(url, headers=bob.auth).get_json()
    assert client.get(url, headers=ada.auth).get_json()["email"] == ada["email"]
    assert client.get(url, headers=admin_user.auth).get_json()["email"] == ada["email"]
    as_bob = client.get("/api/v1/users", headers=bob.auth).get_json()["items"]
    assert {item["id"]: "email" in item for item in as_bob} == {
        admin_user["id"]: False,
        ada["id"]: False,
        bob["id"]: True,
    }


def test_the_email_filter_is_for_admins_and_q_searches_emails_only_for_them(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    create_user(email="secret.handle@example.com", full_name="Plain Name")

    probe = client.get("/api/v1/users?email=secret.handle@example.com")
    probe_q = client.get("/api/v1/users?q=secret.handle").get_json()["items"]
    admin = client.get("/api/v1/users?email=secret.handle@example.com", headers=admin_user.auth)
    admin_q = client.get("/api/v1/users?q=secret.handle", headers=admin_user.auth).get_json()["items"]

    assert probe.status_code == 403
    assert probe_q == []
    assert admin.status_code == 200
    assert [item["email"] for item in admin.get_json()["items"]] == ["secret.handle@example.com"]
    assert [item["full_name"] for item in admin_q] == ["Plain Name"]


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("resource", ["users", "posts"])
def test_a_change_without_if_match_is_428_and_writes_nothing(
    client: FlaskClient, create_user: Any, db_session: Session, method: str, resource: str
) -> None:
    ada: CreatedUser = create_user()
    target = ada if resource == "users" else _post(client, ada)

    response = client.open(f"/api/v1/{resource}/{target['id']}", method=method, json={}, headers=ada.auth)

    assert response.status_code == 428
    stored: User | Post | None = (
        db_session.get(User, target["id"]) if resource == "users" else db_session.get(Post, target["id"])
    )
    assert stored is not None
    assert (stored.version, stored.deleted_at) == (1, None)


def test_if_match_star_accepts_the_current_version(client: FlaskClient, create_user: Any) -> None:
    ada: CreatedUser = create_user()

    response = client.patch(
        f"/api/v1/users/{ada['id']}", json={"full_name": "Star"}, headers=ada.writing("*")
    )

    assert response.status_code == 200


def test_an_anonymous_read_costs_no_statement_for_authentication(
    client: FlaskClient, create_user: Any, database: Database
) -> None:
    ada: CreatedUser = create_user()
    url = f"/api/v1/users/{ada['id']}"

    with count_statements(database) as anonymous:
        client.get(url)
    with count_statements(database) as authenticated:
        client.get(url, headers=ada.auth)

    assert anonymous.count == 1
    assert authenticated.count == 2
    assert "access_tokens" in authenticated.statements[0]


def test_an_authenticated_write_adds_exactly_the_token_lookup(
    client: FlaskClient, create_user: Any, database: Database
) -> None:
    ada: CreatedUser = create_user()

    with count_statements(database) as log:
        response = client.patch(f"/api/v1/users/{ada['id']}", json={"full_name": "N"}, headers=ada.writing(1))

    assert response.status_code == 200
    token_lookups = [sql for sql in log.statements if "access_tokens" in sql]
    assert len(token_lookups) == 1
    assert token_lookups[0].lstrip().upper().startswith("SELECT")
    # The lookup, the user, the UPDATE: using a token writes nothing to the tokens table.
    assert log.count == 3


def test_sorting_users_by_email_is_for_admins(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    create_user()

    anonymous = client.get("/api/v1/users?sort=email")
    descending = client.get("/api/v1/users?sort=-email", headers=create_user().auth)
    admin = client.get("/api/v1/users?sort=email", headers=admin_user.auth)

    assert anonymous.status_code == descending.status_code == 403
    assert admin.status_code == 200


def test_another_user_cannot_replay_an_admins_idempotent_answer(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser, db_session: Session
) -> None:
    items = [{"email": "secret@example.com", "full_name": "S", "password": "password123"}]
    key = {"Idempotency-Key": "bulk-2026-12-02"}
    assert (
        client.post(
            "/api/v1/users/bulk", json={"items": items}, headers={**admin_user.auth, **key}
        ).status_code
        == 201
    )
    mallory: CreatedUser = create_user()

    replay = client.post("/api/v1/users/bulk", json={"items": items}, headers={**mallory.auth, **key})

    # Refused as any bulk create of hers is, before the key is looked at (at the write
    # transaction's start); were she an admin, the fingerprint (which names the caller)
    # would not match: a 422.
    assert replay.status_code == 403
    assert "Idempotent-Replayed" not in replay.headers
    assert "secret@example.com" not in replay.get_data(as_text=True)
