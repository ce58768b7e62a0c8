"""The list envelope and the paging parameters, as they appear on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields


class PageMetaSchema(Schema):
    per_page = fields.Integer(required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    page = fields.Integer(required=True, allow_none=True)
    total = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "Offset mode: the number of matches, exact up to the server's count cap "
            "(10,000 by default); null in cursor mode."
        },
    )
    total_capped = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={
            "description": "Offset mode: true when there are more matches than `total` (the cap: "
            'read it as "10,000+"), else false; null in cursor mode.'
        },
    )
