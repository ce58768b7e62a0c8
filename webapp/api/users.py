"""Users routes: parse, call UserService, serialize. Nothing else."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, url_for

from webapp.api.http import if_match_versions, json_response, no_content, not_modified, with_etag
from webapp.api.idempotency import idempotent
from webapp.api.operations import Listing, operation
from webapp.api.pagination import list_envelope
from webapp.db import get_session
from webapp.repositories import PageRequest, UserRepository
from webapp.schemas.users import (
    UserBulkCreateSchema,
    UserBulkResultSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserListSchema,
    UserSchema,
    UserUpdateSchema,
)
from webapp.services.users import UserService

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")

ID = "<id:user_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
USERS = Listing("users", UserRepository.lister)

user_schema = UserSchema()
users_schema = UserSchema(many=True)


def _service() -> UserService:
    return UserService(get_session(), password_method=current_app.config["PASSWORD_HASH_METHOD"])


@bp.post("")
@idempotent
@operation(
    summary="Create a user",
    tag="users",
    body=UserCreateSchema(),
    response=UserSchema(),
    status=201,
    response_headers=("Location", "ETag"),
    problems=(409,),
)
def create_user(body: Any) -> Response:
    user = _service().create(body)
    response = with_etag(json_response(user_schema.dump(user), 201), user.version)
    response.headers["Location"] = url_for("users.get_user", user_id=user.id)
    return response


@bp.post("/bulk")
@idempotent
@operation(
    summary="Create up to 1000 users, all or nothing",
    tag="users",
    body=UserBulkCreateSchema(),
    response=UserBulkResultSchema(),
    status=201,
    problems=(409,),
)
def bulk_create_users(body: Any) -> Response:
    users = _service().bulk_create(body["items"])
    return json_response({"items": users_schema.dump(users)}, 201)


@bp.get("")
@operation(
    summary="List users", tag="users", query=UserListQuerySchema(), listing=USERS, response=UserListSchema()
)
def list_users(query: Any, page: PageRequest) -> Response:
    result = _service().list(query, page)
    return json_response(list_envelope(USERS.resource, USERS.lister, result, page, users_schema.dump))


@bp.get(f"/{ID}")
@operation(summary="Get a user", tag="users", response=UserSchema(), conditional=True)
def get_user(user_id: int) -> Response:
    user = _service().get(user_id)
    return not_modified(user.version) or with_etag(json_response(user_schema.dump(user)), user.version)


@bp.patch(f"/{ID}")
@operation(
    summary="Change a user",
    tag="users",
    body=UserUpdateSchema(),
    response=UserSchema(),
    conditional=True,
    problems=(409,),
)
def update_user(user_id: int, body: Any) -> Response:
    user = _service().update(user_id, body, if_match=if_match_versions())
    return with_etag(json_response(user_schema.dump(user)), user.version)


@bp.delete(f"/{ID}")
@operation(summary="Delete a user (soft) and their posts", tag="users", status=204, conditional=True)
def delete_user(user_id: int) -> Response:
    _service().delete(user_id, if_match=if_match_versions())
    return no_content()
