"""Users work that runs in a job: a bulk create queued with `Prefer: respond-async`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from webapp.core.auth import Principal
from webapp.core.dumpers import compile_dump
from webapp.core.jobs import PermanentFailure, task
from webapp.core.problems import problem_body
from webapp.resources.users.repository import CreatedUser
from webapp.resources.users.schemas import UserSchema
from webapp.resources.users.service import BULK_CREATE, UserService

dump_user = compile_dump(UserSchema())


def bulk_result(users: Sequence[CreatedUser]) -> dict[str, Any]:
    """What a bulk create answers: in the request (201) and as its job's ``result``."""
    # Only admins create in bulk, and admins see every email: no per-user viewer check.
    return {"items": [dump_user(user) for user in users]}


def _without_passwords(payload: dict[str, Any]) -> dict[str, Any]:
    items = [{key: value for key, value in item.items() if key != "password"} for item in payload["items"]]
    return {**payload, "items": items}


@task(BULK_CREATE, max_attempts=3, redact=_without_passwords)
def bulk_create(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """The synchronous path's service call, in the job's unit of work: all or nothing, and
    its 409 or 422 becomes the job's error. Idempotent: the users and the job's success
    commit together, so a second delivery finds the job finished."""
    items = payload["items"]
    if any("password" not in item for item in items):
        # A finished job keeps no passwords: `flask jobs retry` of a failed one cannot run it.
        raise PermanentFailure(
            problem_body(
                410, "The passwords of this batch were discarded when its job ended; send the batch again."
            )
        )
    service = UserService(session, password_method=current_app.config["PASSWORD_HASH_METHOD"])
    return bulk_result(service.bulk_create(items, Principal(**payload["actor"])))
