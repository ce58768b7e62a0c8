"""REQUIRE_VERIFIED_EMAIL: an unverified user may only verify, fix or recover the account."""

from __future__ import annotations

from collections.abc import Callable

from tests.resources.accounts.conftest import PASSWORD, Mailing


def test_an_unverified_users_writes_are_refused_until_the_email_is_verified(
    mailing: Callable[..., Mailing],
) -> None:
    mail = mailing(REQUIRE_VERIFIED_EMAIL=True)
    user = mail.sign_up("ada@example.com")
    client = mail.client

    refused = client.post("/api/v1/posts", json={"title": "Too early"}, headers=user.auth)
    renamed = client.patch(f"/api/v1/users/{user['id']}", json={"full_name": "X"}, headers=user.writing(1))
    resent = client.post("/api/v1/email-verifications/resend", headers=user.auth)
    fixed = client.patch(
        f"/api/v1/users/{user['id']}",
        json={"email": "ada.lovelace@example.com", "current_password": PASSWORD},
        headers=user.writing(1),
    )

    assert (refused.status_code, refused.get_json()["type"]) == (403, "/problems/email-unverified")
    assert (renamed.status_code, renamed.get_json()["type"]) == (403, "/problems/email-unverified")
    assert (resent.status_code, fixed.status_code) == (202, 200)
    mail.run_jobs()
    token = mail.token_mailed_to("ada.lovelace@example.com")
    assert client.post("/api/v1/email-verifications", json={"token": token}).status_code == 204
    assert client.post("/api/v1/posts", json={"title": "Now"}, headers=user.auth).status_code == 201


def test_an_unverified_user_may_sign_out(mailing: Callable[..., Mailing]) -> None:
    mail = mailing(REQUIRE_VERIFIED_EMAIL=True)
    user = mail.sign_up("ada@example.com")

    assert mail.client.get("/api/v1/tokens", headers=user.auth).status_code == 200
    assert mail.client.delete("/api/v1/tokens", headers=user.auth).status_code == 204


def test_off_by_default(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")

    assert mail.client.post("/api/v1/posts", json={"title": "Fine"}, headers=user.auth).status_code == 201
