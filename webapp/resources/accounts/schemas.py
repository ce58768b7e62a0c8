"""Account input validation."""

from __future__ import annotations

from marshmallow import Schema, validate

from webapp.core.fields import NormalizedEmail, Text


class TokenField(Text):
    """A token from a mail: what secrets.token_urlsafe(32) makes is 43 characters."""

    def __init__(self) -> None:
        super().__init__(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class EmailVerificationSchema(Schema):
    token = TokenField()


class PasswordResetSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=320))


class PasswordResetCompleteSchema(Schema):
    token = TokenField()
    password = Text(required=True, load_only=True, validate=validate.Length(min=8, max=128))


# Examples for the OpenAPI document. A token example is never a real one: the examples
# test sends them and expects the 400 a made-up token answers (tests/core/test_openapi_examples.py).
EMAIL_VERIFICATION_EXAMPLE = {"token": "Xq3v9k1bT0pZ7mWc2rYd5nHs8aLe4uJf6gKo_iNtB-Q"}
PASSWORD_RESET_EXAMPLE = {"email": "ada@example.com"}
PASSWORD_RESET_COMPLETE_EXAMPLE = {
    "token": "Xq3v9k1bT0pZ7mWc2rYd5nHs8aLe4uJf6gKo_iNtB-Q",
    "password": "a new correct horse",
}
