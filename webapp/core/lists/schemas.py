"""The list envelope and the paging parameters, as they appear on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields


class PageMetaSchema(Schema):
    per_page = fields.Integer(required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    page = fields.Integer(required=True, allow_none=True)
    total = fields.Integer(required=True, allow_none=True)
