"""The pages mailed links open: they show a button, spend nothing on GET, leak no token."""

from __future__ import annotations

import logging

import pytest

from tests.resources.accounts.conftest import Mailing


@pytest.mark.parametrize("path", ["/verify-email", "/reset-password"])
def test_opening_a_mailed_link_spends_nothing(mail: Mailing, path: str) -> None:
    user = mail.sign_up("ada@example.com")
    mail.client.post("/api/v1/password-resets", json={"email": "ada@example.com"})
    mail.run_jobs()
    assert {m["Subject"] for m in mail.inbox.to("ada@example.com")} == {
        "Verify your email",
        "Reset your password",
    }
    verification = mail.token_mailed_to("ada@example.com")

    page = mail.client.get(f"{path}?token={verification}")

    assert page.status_code == 200
    assert page.content_type.startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.get_data(as_text=True)  # inline scripts are refused
    me = mail.client.get(f"/api/v1/users/{user['id']}", headers=user.auth).get_json()
    assert me["email_verified"] is False
    assert mail.client.get("/account-pages/account.js").status_code == 200


def test_the_request_log_never_shows_a_token(mail: Mailing, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="webapp.request"):
        mail.client.get("/verify-email?token=s3cret-Token_value&lang=en")

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "s3cret" not in logged
    assert "token=[redacted]&lang=en" in logged


def test_a_link_for_an_address_no_longer_pending_is_never_mailed(mail: Mailing) -> None:
    user = mail.sign_up("ada@example.com")
    body = {"email": "first@example.com", "current_password": "password123"}
    mail.client.patch(f"/api/v1/users/{user['id']}", json=body, headers=user.writing(1))
    body = {"email": "second@example.com", "current_password": "password123"}
    mail.client.patch(f"/api/v1/users/{user['id']}", json=body, headers=user.writing(2))

    mail.run_jobs()

    assert mail.inbox.to("first@example.com") == []
    assert len(mail.inbox.to("second@example.com")) == 1
