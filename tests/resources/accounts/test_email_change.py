"""Changing the email: pending until the new address proves itself; the old one is told."""

from __future__ import annotations

from typing import Any

from tests.resources.accounts.conftest import PASSWORD, Mailing
from tests.support.auth import CreatedUser, make_admin, sign_in
from webapp.core.db import Database


def _change_email(mail: Mailing, user: CreatedUser, email: str, version: int = 1, **extra: Any) -> Any:
    body = {"email": email, "current_password": PASSWORD, **extra}
    return mail.client.patch(f"/api/v1/users/{user['id']}", json=body, headers=user.writing(version))


def _me(mail: Mailing, user: CreatedUser) -> dict[str, Any]:
    body: dict[str, Any] = mail.client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json()
    return body


def test_an_own_email_change_waits_for_the_new_address_and_tells_the_old_one(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")
    mail.run_jobs()

    response = _change_email(mail, user, "Augusta@Example.com")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["email"], body["pending_email"]) == ("ada@example.com", "augusta@example.com")
    mail.run_jobs()
    (notice,) = [m for m in mail.inbox.to("ada@example.com") if m["Subject"] != "Verify your email"]
    assert "augusta@example.com" in notice.get_content()
    assert "token=" not in notice.get_content()

    verified = mail.client.post(
        "/api/v1/email-verifications", json={"token": mail.token_mailed_to("augusta@example.com")}
    )

    assert verified.status_code == 204
    me = _me(mail, user)
    assert (me["email"], me["pending_email"], me["email_verified"]) == ("augusta@example.com", None, True)
    assert sign_in(mail.client, "augusta@example.com", PASSWORD)


def test_a_taken_address_is_answered_like_a_free_one(mail: Mailing) -> None:
    mail.sign_up("grace@example.com")
    user = mail.sign_up("ada@example.com")

    taken = _change_email(mail, user, "grace@example.com")
    free = _change_email(mail, user, "free@example.com", version=2)

    assert (taken.status_code, free.status_code) == (200, 200)
    assert set(taken.get_json()) == set(free.get_json())
    assert taken.get_json()["pending_email"] == "grace@example.com"


def test_an_address_taken_meanwhile_is_a_409_and_changes_nothing(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")
    _change_email(mail, user, "augusta@example.com")
    mail.run_jobs()
    token = mail.token_mailed_to("augusta@example.com")
    mail.sign_up("augusta@example.com", full_name="Someone Else")

    response = mail.client.post("/api/v1/email-verifications", json={"token": token})

    assert (response.status_code, response.get_json()["type"]) == (409, "/problems/email-taken")
    me = _me(mail, user)
    assert (me["email"], me["pending_email"]) == ("ada@example.com", "augusta@example.com")


def test_a_link_for_an_address_no_longer_pending_is_refused(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")
    _change_email(mail, user, "first@example.com")
    mail.run_jobs()
    _change_email(mail, user, "second@example.com", version=2)

    first = mail.client.post(
        "/api/v1/email-verifications", json={"token": mail.token_mailed_to("first@example.com")}
    )

    assert (first.status_code, first.get_json()["type"]) == (400, "/problems/invalid-token")
    assert _me(mail, user)["email"] == "ada@example.com"


def test_an_admin_changes_another_users_email_at_once_unverified(mail: Mailing, database: Database) -> None:
    admin = mail.sign_up("admin@example.com", full_name="The Admin")
    with database.new_session() as session:
        make_admin(session, int(admin["id"]))
    user = mail.sign_up("ada@example.com")
    mail.run_jobs()
    verified = mail.client.post(
        "/api/v1/email-verifications", json={"token": mail.token_mailed_to("ada@example.com")}
    )
    assert verified.status_code == 204

    response = mail.client.patch(
        f"/api/v1/users/{user['id']}", json={"email": "augusta@example.com"}, headers=admin.writing("*")
    )
    taken = mail.client.patch(
        f"/api/v1/users/{user['id']}", json={"email": "admin@example.com"}, headers=admin.writing("*")
    )

    assert response.status_code == 200
    body = response.get_json()
    assert (body["email"], body["email_verified"], body["pending_email"]) == (
        "augusta@example.com",
        False,
        None,
    )
    assert (taken.status_code, taken.get_json()["type"]) == (409, "/problems/email-taken")
    assert len(mail.mails_to("augusta@example.com")) == 1
