"""Token input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.fields import NormalizedEmail, Secret, UtcDateTime


class TokenCreateSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=320))
    password = Secret(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class TokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "Send as Authorization: Bearer <token>."})
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_at = UtcDateTime(required=True)


# Examples for the OpenAPI document; tests/core/test_openapi_examples.py sends them.
TOKEN_CREATE_EXAMPLE = {"email": "ada@example.com", "password": "correct horse battery"}
TOKEN_EXAMPLE = {
    "token": "nW5mYlq3P1o0Jx9b7Zc2aRkTq4VhUe8sLdGf6yXwCiM",
    "token_type": "Bearer",
    "expires_at": "2026-12-03T00:51:07.112084+00:00",
}
