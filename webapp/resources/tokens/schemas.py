"""Token input validation and output shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webapp.core.fields import NormalizedEmail, Text, UtcDateTime


class TokenCreateSchema(Schema):
    email = NormalizedEmail(required=True, validate=validate.Length(max=320))
    password = Text(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class TokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "Send as Authorization: Bearer <token>."})
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_at = UtcDateTime(required=True)
