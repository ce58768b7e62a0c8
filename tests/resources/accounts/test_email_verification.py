"""Email verification: sign-up mails a link; its token, posted once, verifies the address."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.resources.accounts.conftest import BASE_URL, Mailing, link_in
from webapp.core.db import Database
from webapp.core.db.mixins import utcnow
from webapp.core.jobs import Job
from webapp.resources.accounts.model import AccountToken
from webapp.resources.accounts.service import token_hash


def _verify(mail: Mailing, token: str) -> tuple[int, dict[str, object] | None]:
    response = mail.client.post("/api/v1/email-verifications", json={"token": token})
    return response.status_code, response.get_json(silent=True)


def test_sign_up_mails_a_link_whose_token_verifies_the_email(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")
    assert user["email_verified"] is False
    assert user["pending_email"] is None

    (message,) = mail.mails_to("ada@example.com")
    assert message["Subject"] == "Verify your email"
    assert link_in(message).startswith(f"{BASE_URL}/verify-email?token=")
    assert _verify(mail, mail.token_mailed_to("ada@example.com")) == (204, None)

    me = mail.client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json()
    assert me["email_verified"] is True


def test_a_verification_token_works_once(mail: Mailing) -> None:
    mail.sign_up("ada@example.com")
    mail.run_jobs()
    token = mail.token_mailed_to("ada@example.com")

    assert _verify(mail, token)[0] == 204
    status, problem = _verify(mail, token)

    assert status == 400
    assert problem is not None
    assert problem["type"] == "/problems/invalid-token"


def test_an_expired_verification_token_is_refused(mail: Mailing, database: Database) -> None:
    user = mail.sign_up("ada@example.com")
    mail.run_jobs()
    token = mail.token_mailed_to("ada@example.com")
    with database.new_session() as session:
        session.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    status, problem = _verify(mail, token)

    assert (status, problem and problem["type"]) == (400, "/problems/invalid-token")
    me = mail.client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json()
    assert me["email_verified"] is False


def test_a_made_up_token_is_refused_like_a_used_one(mail: Mailing) -> None:
    status, problem = _verify(mail, "Xq3v9k1bT0pZ7mWc2rYd5nHs8aLe4uJf6gKo_iNtB-Q")

    assert (status, problem and problem["type"]) == (400, "/problems/invalid-token")


def test_a_verification_link_lives_the_configured_hours(
    mailing: Callable[..., Mailing], db_session: Session
) -> None:
    mail = mailing(EMAIL_VERIFICATION_TTL_HOURS=3)
    mail.sign_up("ada@example.com")
    mail.run_jobs()

    stored = db_session.scalars(select(AccountToken)).one()
    assert stored.expires_at - stored.created_at == timedelta(hours=3)


def test_the_token_is_stored_nowhere_but_as_its_hash(mail: Mailing, db_session: Session) -> None:
    mail.sign_up("ada@example.com")
    mail.run_jobs()
    token = mail.token_mailed_to("ada@example.com")

    stored = db_session.scalars(select(AccountToken)).one()
    assert stored.token_hash == token_hash(token)
    assert len(token) >= 43  # 256 bits, base64url
    for job in db_session.scalars(select(Job)):
        assert token not in repr(job.payload)
        assert token not in repr(job.result)


def test_resend_mails_a_new_link_and_nothing_once_verified(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")
    mail.run_jobs()

    assert mail.client.post("/api/v1/email-verifications/resend", headers=user.auth).status_code == 202
    assert len(mail.mails_to("ada@example.com")) == 2
    first, second = (message for message in mail.inbox.to("ada@example.com"))
    assert link_in(first) != link_in(second)
    assert _verify(mail, mail.token_mailed_to("ada@example.com"))[0] == 204

    again = mail.client.post("/api/v1/email-verifications/resend", headers=user.auth)
    assert (again.status_code, again.get_data()) == (202, b"")
    assert len(mail.mails_to("ada@example.com")) == 2


def test_resend_needs_a_bearer_token(mail: Mailing) -> None:
    assert mail.client.post("/api/v1/email-verifications/resend").status_code == 401


def test_verification_fields_are_shown_only_where_the_email_is(mail: Mailing) -> None:
    ada = mail.sign_up("ada@example.com")
    grace = mail.sign_up("grace@example.com", full_name="Grace Hopper")

    to_grace = mail.client.get(f"/api/v1/users/{ada['id']}", headers=grace.auth).get_json()
    anonymous = mail.client.get("/api/v1/users").get_json()["items"]
    to_ada = mail.client.get(f"/api/v1/users/{ada['id']}", headers=ada.auth).get_json()

    for body in (to_grace, *anonymous):
        assert not {"email", "email_verified", "pending_email"} & set(body)
    assert {"email", "email_verified", "pending_email"} <= set(to_ada)
