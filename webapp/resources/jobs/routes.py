"""Jobs routes: the state of a job a `Prefer: respond-async` request queued."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from webapp.core.auth import require_principal
from webapp.core.db import get_session
from webapp.core.dumpers import compile_dump
from webapp.core.http import json_response
from webapp.core.jobs import Job
from webapp.core.operations import AsyncAnswer, operation
from webapp.core.resource import Resource
from webapp.resources.jobs.schemas import JOB_QUEUED_EXAMPLE, JOB_SUCCEEDED_EXAMPLE, JobSchema
from webapp.resources.jobs.service import JobService

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")

dump_job = compile_dump(JobSchema())

# What an operation that honours `Prefer: respond-async` declares (@operation(respond_async=...)).
RESPOND_ASYNC = AsyncAnswer(JobSchema(), JOB_QUEUED_EXAMPLE)


def prefers_async(prefer_headers: list[str]) -> bool:
    """Whether the Prefer header fields (RFC 7240) ask for respond-async: comma-separated
    preferences, each ``token[=value]`` with ``;`` parameters, names case-insensitive."""
    return any(
        preference.split(";", 1)[0].split("=", 1)[0].strip().lower() == "respond-async"
        for field in prefer_headers
        for preference in field.split(",")
    )


def accepted(job: Job) -> Response:
    """202 Accepted: the queued job, where to follow it, and that the preference was honoured."""
    response = json_response(dump_job(job), 202)
    response.headers["Location"] = url_for("jobs.get_job", job_id=job.id)
    response.headers["Preference-Applied"] = "respond-async"
    return response


@bp.get("/jobs/<id:job_id>")
@operation(
    summary="Get a job: its state, then its result or its problem",
    tag="jobs",
    description="A job a request queued with `Prefer: respond-async`, for its creator and admins "
    "(404 for anyone else). `state` goes queued -> running -> succeeded or failed; a failed "
    "attempt that will be retried is queued again. Once `succeeded`, `result` is what the "
    "operation answers without the header; once `failed`, `error` is the problem it would have "
    "answered.",
    response=JobSchema(),
    response_example=JOB_SUCCEEDED_EXAMPLE,
)
def get_job(job_id: int) -> Response:
    return json_response(dump_job(JobService(get_session()).get(job_id, require_principal())))


resource = Resource(name="jobs", blueprint=bp)
