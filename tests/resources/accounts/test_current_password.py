"""The current password guards a user's own password and email: a stolen token is not enough."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.resources.accounts.conftest import PASSWORD, Mailing
from tests.support.auth import CreatedUser
from webapp.resources.users import service as user_service


def _patch(
    client: FlaskClient, user: CreatedUser, body: dict[str, Any], auth: CreatedUser | None = None
) -> Any:
    headers = (auth or user).writing("*")
    return client.patch(f"/api/v1/users/{user['id']}", json=body, headers=headers)


@pytest.mark.parametrize("change", [{"password": "a new password"}, {"email": "new@example.com"}])
def test_without_the_current_password_an_own_change_is_a_422(
    client: FlaskClient, create_user: Any, change: dict[str, str]
) -> None:
    user: CreatedUser = create_user()

    response = _patch(client, user, change)

    assert response.status_code == 422
    assert "current_password" in response.get_json()["errors"]


@pytest.mark.parametrize("change", [{"password": "a new password"}, {"email": "new@example.com"}])
def test_a_wrong_current_password_is_a_403_and_writes_nothing(
    client: FlaskClient, create_user: Any, change: dict[str, str]
) -> None:
    user: CreatedUser = create_user()

    response = _patch(client, user, {**change, "current_password": "not it"})

    assert (response.status_code, response.get_json()["type"]) == (403, "/problems/wrong-password")
    me = client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json()
    assert (me["version"], me["pending_email"]) == (1, None)


def test_other_changes_need_no_current_password(client: FlaskClient, create_user: Any) -> None:
    user: CreatedUser = create_user()

    assert _patch(client, user, {"full_name": "Renamed"}).status_code == 200


def test_an_admin_changing_another_user_needs_none(
    client: FlaskClient, create_user: Any, admin_user: CreatedUser
) -> None:
    user: CreatedUser = create_user()

    response = _patch(client, user, {"password": "set by the admin"}, auth=admin_user)

    assert response.status_code == 200
    assert (
        client.post(
            "/api/v1/tokens", json={"email": user["email"], "password": "set by the admin"}
        ).status_code
        == 201
    )


def test_wrong_current_passwords_count_against_the_sign_in_limits(mailing: Callable[..., Mailing]) -> None:
    mail = mailing(
        RATELIMIT_ENABLED=True,
        RATELIMIT_TOKEN_FAILURES_PER_EMAIL="3 per 15 minutes",
        RATELIMIT_PASSWORD_HASHES_PER_ADDRESS="100 per minute",
    )
    user = mail.sign_up("ada@example.com")
    wrong = {"password": "a new password", "current_password": "guess"}

    statuses = [_patch(mail.client, user, wrong).status_code for _ in range(4)]
    right = _patch(mail.client, user, {**wrong, "current_password": PASSWORD})
    sign_in = mail.client.post("/api/v1/tokens", json={"email": "ada@example.com", "password": PASSWORD})

    assert statuses == [403, 403, 403, 429]
    assert right.status_code == 429
    assert sign_in.status_code == 429


def test_a_right_current_password_is_not_counted(mailing: Callable[..., Mailing]) -> None:
    mail = mailing(
        RATELIMIT_ENABLED=True,
        RATELIMIT_TOKEN_FAILURES_PER_EMAIL="2 per 15 minutes",
        RATELIMIT_PASSWORD_HASHES_PER_ADDRESS="100 per minute",
    )
    user = mail.sign_up("ada@example.com")

    statuses = [
        _patch(
            mail.client,
            user,
            {"full_name": f"Ada {n}", "email": "ada@example.com", "current_password": PASSWORD},
        ).status_code
        for n in range(4)
    ]

    assert statuses == [200, 200, 200, 200]


def test_someone_elses_account_is_refused_before_any_password_is_hashed(
    client: FlaskClient, create_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner: CreatedUser = create_user()
    attacker: CreatedUser = create_user()
    hashed: list[str] = []
    verified: list[str] = []

    def counting_hash(password: str, method: str) -> str:
        hashed.append(password)
        return "never stored"

    def counting_verify(stored: str, password: str) -> bool:
        verified.append(password)
        return False

    monkeypatch.setattr(user_service, "hash_password", counting_hash)
    monkeypatch.setattr(user_service, "verify_password", counting_verify)

    response = _patch(client, owner, {"password": "p" * 128, "current_password": "p" * 128}, auth=attacker)

    assert response.status_code == 403
    assert (hashed, verified) == ([], [])
