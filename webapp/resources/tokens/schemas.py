"""Token input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.fields import NormalizedEmail, Secret, UtcDateTime
from webapp.core.lists.schemas import PageMetaSchema


class TokenCreateSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=320))
    password = Secret(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class TokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "Send as Authorization: Bearer <token>."})
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_at = UtcDateTime(required=True)


class SessionSchema(Schema):
    """A live token of the caller, never the token itself (only its hash is stored)."""

    id = fields.Integer(required=True, metadata={"description": "DELETE /api/v1/tokens/{id} ends it."})
    created_at = UtcDateTime(required=True)
    expires_at = UtcDateTime(required=True)
    current = fields.Boolean(required=True, metadata={"description": "Whether this request carries it."})


class SessionListSchema(Schema):
    items = fields.List(fields.Nested(SessionSchema), required=True)
    meta = fields.Nested(PageMetaSchema, required=True)


# Examples for the OpenAPI document; tests/core/test_openapi_examples.py sends them.
TOKEN_CREATE_EXAMPLE = {"email": "ada@example.com", "password": "correct horse battery"}
TOKEN_EXAMPLE = {
    "token": "nW5mYlq3P1o0Jx9b7Zc2aRkTq4VhUe8sLdGf6yXwCiM",
    "token_type": "Bearer",
    "expires_at": "2026-12-03T00:51:07.112084+00:00",
}
SESSION_LIST_EXAMPLE = {
    "items": [
        {
            "id": 7,
            "created_at": "2026-12-07T18:02:11.410023+00:00",
            "expires_at": "2026-12-08T18:02:11.410023+00:00",
            "current": True,
        }
    ],
    "meta": {"per_page": 20, "next_cursor": None, "page": 1, "total": 1, "total_capped": False},
}
