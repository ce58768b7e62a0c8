"""Signing in from tests, through the real API: tokens are issued and checked as in production."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from webapp.core.passwords import hash_password
from webapp.resources.users.model import User


class CreatedUser(dict[str, Any]):
    """A user's JSON as the API answered it, plus ``auth``: the headers of a signed-in client."""

    auth: dict[str, str]
    password: str

    def writing(self, version: int | str = "*") -> dict[str, str]:
        """Headers for a PATCH/DELETE as this user: the token and If-Match (``*`` or a version)."""
        tag = version if version == "*" else f'"{version}"'
        return {**self.auth, "If-Match": str(tag)}


def sign_in(client: FlaskClient, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/tokens", json={"email": email, "password": password})
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def make_admin(session: Session, user_id: int) -> None:
    """What `flask users promote` does, for a user the test created through the API."""
    session.execute(update(User).where(User.id == user_id).values(is_admin=True))
    session.commit()


# For users a test inserts directly (tests/support/factories.py) that must then sign in.
KNOWN_PASSWORD = "password123"


def known_password_hash(password: str = KNOWN_PASSWORD) -> str:
    """A stored hash of ``password`` (a cheap method: what TestingConfig uses too)."""
    return hash_password(password, "pbkdf2:sha256:1000")
