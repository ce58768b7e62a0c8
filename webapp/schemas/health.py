"""The /health answer."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "error"]))
    database = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
