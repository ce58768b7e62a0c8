"""Users routes: parse (declared in @operation), call UserService, serialize. Nothing else."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, url_for

from webapp.core.db import get_session
from webapp.core.http import (
    created_response,
    entity_response,
    if_match_versions,
    json_response,
    no_content,
    not_modified,
)
from webapp.core.idempotency.http import idempotent
from webapp.core.lists import PageRequest
from webapp.core.lists.http import Listing, list_response
from webapp.core.operations import operation
from webapp.core.resource import Resource
from webapp.resources.users.model import User
from webapp.resources.users.repository import UserRepository
from webapp.resources.users.schemas import (
    UserBulkCreateSchema,
    UserBulkResultSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserListSchema,
    UserSchema,
    UserUpdateSchema,
)
from webapp.resources.users.service import UserService

bp = Blueprint("users", __name__, url_prefix="/api/v1")

ID = "<id:user_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
USERS = Listing("users", UserService.lister)

user_schema = UserSchema()
users_schema = UserSchema(many=True)


def _service() -> UserService:
    return UserService(get_session(), password_method=current_app.config["PASSWORD_HASH_METHOD"])


def _entity(user: User, status: int = 200) -> Response:
    return entity_response(user_schema.dump(user), user.version, status)


@bp.post("/users")
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
    return created_response(user_schema.dump(user), user.version, url_for("users.get_user", user_id=user.id))


@bp.post("/users/bulk")
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


@bp.get("/users")
@operation(
    summary="List users", tag="users", query=UserListQuerySchema(), listing=USERS, response=UserListSchema()
)
def list_users(query: Any, page: PageRequest) -> Response:
    return list_response(USERS, _service().list(query, page), page, users_schema.dump)


@bp.get(f"/users/{ID}")
@operation(summary="Get a user", tag="users", response=UserSchema(), conditional=True)
def get_user(user_id: int) -> Response:
    user = _service().get(user_id)
    return not_modified(user.version) or _entity(user)


@bp.patch(f"/users/{ID}")
@operation(
    summary="Change a user",
    tag="users",
    body=UserUpdateSchema(),
    response=UserSchema(),
    conditional=True,
    problems=(409,),
)
def update_user(user_id: int, body: Any) -> Response:
    return _entity(_service().update(user_id, body, if_match=if_match_versions()))


@bp.delete(f"/users/{ID}")
@operation(summary="Delete a user (soft) and what is theirs", tag="users", status=204, conditional=True)
def delete_user(user_id: int) -> Response:
    _service().delete(user_id, if_match=if_match_versions())
    return no_content()


resource = Resource(name="users", blueprint=bp, repositories=(UserRepository,))
