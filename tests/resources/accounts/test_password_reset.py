"""Password reset: every address answered alike; a registered, active user gets a one-time link."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.resources.accounts.conftest import BASE_URL, PASSWORD, Mailing, link_in
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.resources.accounts.model import AccountToken

NEW_PASSWORD = "a brand new horse"


def _ask(mail: Mailing, email: str, address: str = "127.0.0.1") -> Any:
    return mail.client.post(
        "/api/v1/password-resets", json={"email": email}, environ_base={"REMOTE_ADDR": address}
    )


def _complete(mail: Mailing, token: str, password: str = NEW_PASSWORD) -> Any:
    return mail.client.post("/api/v1/password-resets/complete", json={"token": token, "password": password})


def _comparable(response: Any) -> tuple[int, bytes, dict[str, str]]:
    varying = {"x-request-id", "date", "server-timing"}
    headers = {name.lower(): value for name, value in response.headers if name.lower() not in varying}
    return response.status_code, response.get_data(), headers


def test_an_unknown_email_is_answered_exactly_like_a_registered_one(mail: Mailing) -> None:
    mail.sign_up("ada@example.com")

    known = _ask(mail, "ada@example.com")
    unknown = _ask(mail, "nobody@example.com")

    assert known.status_code == 202
    assert _comparable(known) == _comparable(unknown)


def test_only_a_registered_active_user_gets_a_reset_mail(mail: Mailing, database: Database) -> None:
    mail.sign_up("ada@example.com")
    inactive = mail.sign_up("grace@example.com")
    mail.client.patch(
        f"/api/v1/users/{inactive['id']}", json={"is_active": False}, headers=inactive.writing(1)
    )
    mail.run_jobs()  # the sign-ups' verification mails

    for email in ("ada@example.com", "grace@example.com", "nobody@example.com"):
        assert _ask(mail, email).status_code == 202
    mail.run_jobs()

    resets = [m for m in mail.inbox.messages if m["Subject"] == "Reset your password"]
    assert [m["To"] for m in resets] == ["ada@example.com"]
    assert link_in(resets[0]).startswith(f"{BASE_URL}/reset-password?token=")


def test_completing_a_reset_sets_the_password_revokes_every_token_and_verifies_the_email(
    mail: Mailing,
) -> None:
    user = mail.sign_up("ada@example.com")
    _ask(mail, "ada@example.com")
    mail.run_jobs()

    assert _complete(mail, mail.token_mailed_to("ada@example.com")).status_code == 204

    old_token = mail.client.post("/api/v1/posts", json={"title": "x"}, headers=user.auth)
    assert old_token.status_code == 401
    old_password = {"email": "ada@example.com", "password": PASSWORD}
    assert mail.client.post("/api/v1/tokens", json=old_password).status_code == 401
    new = mail.client.post("/api/v1/tokens", json={"email": "ada@example.com", "password": NEW_PASSWORD})
    assert new.status_code == 201
    me = mail.client.get(
        f"/api/v1/users/{user['id']}", headers={"Authorization": f"Bearer {new.get_json()['token']}"}
    )
    assert me.get_json()["email_verified"] is True


def test_a_reset_token_works_once_and_spends_the_other_links(mail: Mailing) -> None:
    mail.sign_up("ada@example.com")
    _ask(mail, "ada@example.com")
    _ask(mail, "ada@example.com")
    mail.run_jobs()
    first, second = (m for m in mail.inbox.to("ada@example.com") if m["Subject"] == "Reset your password")
    token = mail.token_mailed_to("ada@example.com")

    assert _complete(mail, token).status_code == 204
    again = _complete(mail, token, "yet another one")
    other = _complete(mail, link_in(first).split("token=")[1], "yet another one")

    assert (again.status_code, again.get_json()["type"]) == (400, "/problems/invalid-token")
    assert (other.status_code, other.get_json()["type"]) == (400, "/problems/invalid-token")
    assert link_in(second).endswith(token)


def test_an_expired_reset_token_is_refused(mail: Mailing, database: Database) -> None:
    mail.sign_up("ada@example.com")
    _ask(mail, "ada@example.com")
    mail.run_jobs()
    with database.new_session() as session:
        session.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    response = _complete(mail, mail.token_mailed_to("ada@example.com"))

    assert (response.status_code, response.get_json()["type"]) == (400, "/problems/invalid-token")
    assert (
        mail.client.post(
            "/api/v1/tokens", json={"email": "ada@example.com", "password": PASSWORD}
        ).status_code
        == 201
    )


def test_a_reset_link_lives_an_hour_by_default(mail: Mailing, db_session: Session) -> None:
    mail.sign_up("ada@example.com")
    _ask(mail, "ada@example.com")
    mail.run_jobs()

    (reset,) = db_session.scalars(select(AccountToken).where(AccountToken.purpose == "reset-password"))
    assert reset.expires_at - reset.created_at == timedelta(hours=1)


def test_a_made_up_reset_token_is_refused_and_the_new_password_is_checked(mail: Mailing) -> None:
    made_up = _complete(mail, "Xq3v9k1bT0pZ7mWc2rYd5nHs8aLe4uJf6gKo_iNtB-Q")
    too_short = _complete(mail, "Xq3v9k1bT0pZ7mWc2rYd5nHs8aLe4uJf6gKo_iNtB-Q", "short")

    assert (made_up.status_code, made_up.get_json()["type"]) == (400, "/problems/invalid-token")
    assert too_short.status_code == 422
    assert "password" in too_short.get_json()["errors"]


def test_reset_requests_are_limited_per_email_and_per_client_address(mailing: Callable[..., Mailing]) -> None:
    mail = mailing(
        RATELIMIT_ENABLED=True,
        RATELIMIT_ACCOUNT_MAILS_PER_EMAIL="2 per hour",
        RATELIMIT_ACCOUNT_MAILS_PER_ADDRESS="4 per hour",
    )

    per_email = [_ask(mail, "ada@example.com", "10.0.0.1").status_code for _ in range(3)]
    other_email = _ask(mail, "grace@example.com", "10.0.0.1").status_code
    per_address = [_ask(mail, f"user{n}@example.com", "10.0.0.2").status_code for n in range(5)]

    assert per_email == [202, 202, 429]
    assert other_email == 202
    assert per_address == [202, 202, 202, 202, 429]
    limited = _ask(mail, "ada@example.com", "10.0.0.3")
    assert limited.get_json()["type"] == "/problems/rate-limited"
    assert int(limited.headers["Retry-After"]) > 0


def test_a_retried_reset_request_with_an_idempotency_key_mails_once(mail: Mailing) -> None:
    mail.sign_up("ada@example.com")
    headers = {"Idempotency-Key": "6f1c2d9e-4b7a-4c3e-9a51-0d2f8e7b6c14"}

    first = mail.client.post("/api/v1/password-resets", json={"email": "ada@example.com"}, headers=headers)
    again = mail.client.post("/api/v1/password-resets", json={"email": "ada@example.com"}, headers=headers)
    mail.run_jobs()

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [m["Subject"] for m in mail.inbox.to("ada@example.com")].count("Reset your password") == 1


def test_two_requests_racing_with_one_token_set_one_password(mail: Mailing) -> None:
    mail.sign_up("ada@example.com")
    _ask(mail, "ada@example.com")
    mail.run_jobs()
    token = mail.token_mailed_to("ada@example.com")
    start = threading.Barrier(8)

    def complete(number: int) -> int:
        client = mail.app.test_client()
        start.wait()
        body = {"token": token, "password": f"racing password {number}"}
        return int(client.post("/api/v1/password-resets/complete", json=body).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(complete, range(8)))

    assert statuses == [204] + [400] * 7
