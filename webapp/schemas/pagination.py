"""The list envelope and the paging parameters, as they appear on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class PageMetaSchema(Schema):
    per_page = fields.Integer(required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    page = fields.Integer(required=True, allow_none=True)
    total = fields.Integer(required=True, allow_none=True)


class PagingQuerySchema(Schema):
    """Documents the paging parameters that webapp/api/pagination.py reads."""

    sort = fields.String(
        metadata={"description": "Comma-separated sort keys; prefix - for descending."},
    )
    page = fields.Integer(
        validate=validate.Range(min=1), metadata={"description": "Offset mode page, from 1."}
    )
    per_page = fields.Integer(validate=validate.Range(min=1, max=100), metadata={"description": "1..100"})
    cursor = fields.String(metadata={"description": "next_cursor of the previous page; not with page."})
