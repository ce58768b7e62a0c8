"""An app that mails through a real SMTP server, and the helpers the account tests share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.auth import CreatedUser, sign_in
from tests.support.smtp import Inbox, smtp_server
from webapp.core.jobs import run_due_jobs

PASSWORD = "password123"
BASE_URL = "https://app.example.com"


@dataclass
class Mailing:
    """An app of its own whose jobs mail ``inbox``; jobs run when a test says so."""

    app: Flask
    client: FlaskClient
    inbox: Inbox

    def run_jobs(self) -> int:
        total = 0
        with self.app.app_context():
            while ran := run_due_jobs():
                total += ran
        return total

    def sign_up(self, email: str, password: str = PASSWORD, full_name: str = "Ada Lovelace") -> CreatedUser:
        response = self.client.post(
            "/api/v1/users", json={"email": email, "full_name": full_name, "password": password}
        )
        assert response.status_code == 201, response.get_json()
        user = CreatedUser(response.get_json())
        user.password = password
        user.auth = sign_in(self.client, email, password)
        return user

    def mails_to(self, address: str) -> list[EmailMessage]:
        """What arrived for ``address`` once every due job has run (the SMTP answer is awaited)."""
        self.run_jobs()
        return self.inbox.to(address)

    def token_mailed_to(self, address: str) -> str:
        """The token of the newest mail to ``address``, read from its link."""
        (*_, newest) = self.inbox.wait_for(address)
        return token_in(newest)


def link_in(message: EmailMessage) -> str:
    found = re.search(r"https?://\S+", message.get_content())
    assert found, message.get_content()
    return found.group(0)


def token_in(message: EmailMessage) -> str:
    (token,) = parse_qs(urlsplit(link_in(message)).query)["token"]
    return token


@pytest.fixture
def mailing(make_own_app: Callable[..., Flask]) -> Iterator[Callable[..., Mailing]]:
    """``mailing(**settings)``: an app with these settings that mails a fresh SMTP server."""
    with smtp_server() as (url, inbox):

        def build(**settings: Any) -> Mailing:
            app = make_own_app(MAIL_URL=url, APP_BASE_URL=BASE_URL, **settings)
            return Mailing(app, app.test_client(), inbox)

        yield build


@pytest.fixture
def mail(mailing: Callable[..., Mailing]) -> Mailing:
    return mailing()
