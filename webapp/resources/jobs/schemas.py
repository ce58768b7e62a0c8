"""A job as the API shows it: its state, and once finished its result or its problem."""

from __future__ import annotations

from marshmallow import Schema, fields

from webapp.core.fields import UtcDateTime


class JobSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(
        required=True, metadata={"description": "What the job does, e.g. users.bulk_create."}
    )
    state = fields.String(required=True, metadata={"enum": ["queued", "running", "succeeded", "failed"]})
    created_at = UtcDateTime(required=True)
    finished_at = UtcDateTime(required=True, allow_none=True)
    result = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"description": "When succeeded: what the operation answers without Prefer: respond-async."},
    )
    error = fields.Dict(
        required=True,
        allow_none=True,
        metadata={"description": "When failed: the problem document the operation would have answered."},
    )


# Examples for the OpenAPI document, copied from real answers.
JOB_QUEUED_EXAMPLE = {
    "id": 7,
    "kind": "users.bulk_create",
    "state": "queued",
    "created_at": "2026-12-07T18:02:41.503112+00:00",
    "finished_at": None,
    "result": None,
    "error": None,
}
JOB_SUCCEEDED_EXAMPLE = {
    "id": 7,
    "kind": "users.bulk_create",
    "state": "succeeded",
    "created_at": "2026-12-07T18:02:41.503112+00:00",
    "finished_at": "2026-12-07T18:02:41.921460+00:00",
    "result": {
        "items": [
            {
                "id": 2,
                "email": "grace@example.com",
                "full_name": "Grace Hopper",
                "is_active": True,
                "version": 1,
                "created_at": "2026-12-07T18:02:41.918302+00:00",
                "updated_at": "2026-12-07T18:02:41.918311+00:00",
            }
        ]
    },
    "error": None,
}
