"""Users routes: parse (declared in @operation), call UserService, serialize. Nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from flask import Blueprint, Response, current_app, request, url_for
from flask.cli import AppGroup

from webapp.core.auth import check_verified, current_principal, open_to_unverified, public, require_principal
from webapp.core.db import current_database, get_reader, get_session, unit_of_work
from webapp.core.dumpers import compile_dump
from webapp.core.errors import NotFound
from webapp.core.fields import normalize_email
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
from webapp.core.ratelimits import PASSWORD_HASHES, FailureBudget, client_address, rate_limit, spends
from webapp.core.resource import Resource
from webapp.resources.accounts.model import WRONG_PASSWORD
from webapp.resources.jobs.routes import RESPOND_ASYNC, accepted, prefers_async
from webapp.resources.users.model import EMAIL_TAKEN, User
from webapp.resources.users.schemas import (
    USER_BULK_CREATE_EXAMPLE,
    USER_BULK_RESULT_EXAMPLE,
    USER_CREATE_EXAMPLE,
    USER_EXAMPLE,
    USER_LIST_EXAMPLE,
    USER_UPDATE_EXAMPLE,
    USER_UPDATED_EXAMPLE,
    UserBulkCreateSchema,
    UserBulkResultSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserListSchema,
    UserSchema,
    UserUpdateSchema,
)
from webapp.resources.users.service import UserReadService, UserService
from webapp.resources.users.tasks import bulk_result

bp = Blueprint("users", __name__, url_prefix="/api/v1")

ID = "<id:user_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
USERS = Listing("users", UserReadService.lister)

# UserSchema's dump (core/dumpers.py), of User objects (what writes answer) and of rows
# of the same names (what GETs answer).
dump_user = compile_dump(UserSchema())


# Shown only to the user and admins.
PRIVATE_FIELDS = ("email", "email_verified", "pending_email")
# What an unverified user may change about themselves when REQUIRE_VERIFIED_EMAIL is on:
# the email (to fix a typo) and the password.
ACCOUNT_FIELDS = frozenset({"email", "password", "current_password"})
# Wrong current passwords count against the sign-in limits of the account and the address.
PASSWORD_FAILURES_PER_ADDRESS = ("RATELIMIT_TOKEN_FAILURES_PER_ADDRESS", client_address)


def _visible(body: dict[str, Any]) -> dict[str, Any]:
    """The representation the caller may see: the email only for the user and admins."""
    viewer = current_principal()
    if viewer is None or not (viewer.is_admin or viewer.user_id == body["id"]):
        for private in PRIVATE_FIELDS:
            del body[private]
    return body


def _dump(user: Any) -> dict[str, Any]:
    """A User or a row of UserSchema's fields, as the caller may see it."""
    return _visible(dump_user(user))


def _dump_all(users: Sequence[Any]) -> list[dict[str, Any]]:
    return [_dump(user) for user in users]


def _service() -> UserService:
    return UserService(get_session(), password_method=current_app.config["PASSWORD_HASH_METHOD"])


def _reads() -> UserReadService:
    return UserReadService(get_reader())


def _entity(user: User, status: int = 200) -> Response:
    return entity_response(_dump(user), user.version, status)


@bp.post("/users")
@public
@rate_limit("RATELIMIT_SIGNUP")
@spends(PASSWORD_HASHES)
@idempotent
@operation(
    summary="Create a user",
    tag="users",
    description="Sign up: the email is stored in its normal form (Unicode NFKC, case-folded: look-alike "
    "spellings are one address) and must not belong to another live "
    "user (409 email-taken); the password (8..128 characters) is stored only as a hash and never "
    "sent back. A link to verify the email is mailed to it (POST /api/v1/email-verifications); "
    "until then `email_verified` is false. Answers the user with its Location and ETag.",
    request_example=USER_CREATE_EXAMPLE,
    response_example=USER_EXAMPLE,
    body=UserCreateSchema(),
    response=UserSchema(),
    status=201,
    response_headers=("Location", "ETag"),
    problems=(EMAIL_TAKEN,),
)
def create_user(body: Any) -> Response:
    user = _service().create(body)
    # The new user is not the caller (sign-up needs no token), but the email is theirs.
    return created_response(dump_user(user), user.version, url_for("users.get_user", user_id=user.id))


@bp.post("/users/bulk")
@idempotent
@operation(
    summary="Create up to 1000 users, all or nothing",
    tag="users",
    description="One transaction: an invalid item (422, `errors` keyed `items.<index>.<field>`), an "
    "email repeated in the batch (422) or one already taken (409 email-taken) writes nothing. "
    "The users come back in the order sent. With `Prefer: respond-async` it answers 202 at once and a "
    "job hashes and inserts them (the same rules, all or nothing): follow its `Location`.",
    request_example=USER_BULK_CREATE_EXAMPLE,
    response_example=USER_BULK_RESULT_EXAMPLE,
    body=UserBulkCreateSchema(),
    response=UserBulkResultSchema(),
    status=201,
    problems=(EMAIL_TAKEN,),
    respond_async=RESPOND_ASYNC,
)
def bulk_create_users(body: Any) -> Response:
    if prefers_async(request.headers.getlist("Prefer")):
        return accepted(_service().bulk_create_later(body["items"], require_principal()))
    # Only admins get this far (the service refuses anyone else), and admins see every
    # email: no per-user viewer check.
    return json_response(bulk_result(_service().bulk_create(body["items"], require_principal())), 201)


@bp.get("/users")
@operation(
    summary="List users",
    tag="users",
    description="Live users, filtered by `is_active`, `email` (exact, case-insensitive; admins only), "
    "`q` (part of the full name; of the email too for admins) and `post_title` (users with a live post "
    "whose title contains it). A page with a successor sends `meta.next_cursor` and "
    '`Link: <...>; rel="next"`.',
    response_example=USER_LIST_EXAMPLE,
    query=UserListQuerySchema(),
    listing=USERS,
    response=UserListSchema(),
    problems=(403,),
)
def list_users(query: Any, page: PageRequest) -> Response:
    return list_response(USERS, _reads().list(query, page, current_principal()), page, _dump_all)


@bp.get(f"/users/{ID}")
@operation(
    summary="Get a user",
    tag="users",
    description='A live user, with `ETag: "<version>"`; If-None-Match with that tag answers 304 '
    "with no content. A deleted user is a 404.",
    response_example=USER_EXAMPLE,
    response=UserSchema(),
    conditional=True,
)
def get_user(user_id: int) -> Response:
    user = _reads().get(user_id)
    return not_modified(user["version"]) or entity_response(_dump(user), user["version"])


@bp.patch(f"/users/{ID}")
@open_to_unverified
@operation(
    summary="Change a user",
    tag="users",
    description="Changes any of `email`, `full_name`, `password`, `is_active`; the version goes up "
    "by one. Users changing their own `password` or `email` also send `current_password` "
    "(missing: 422; wrong: 403 wrong-password, counted like a failed sign-in, 429 past the "
    "limit). Their own new `email` is not theirs yet: it is answered as `pending_email`, a "
    "link is mailed to it (POST /api/v1/email-verifications makes it the email) and a notice "
    "to the old address; so the answer never tells whether an address is taken. An admin "
    "changing another user's email changes it at once (409 email-taken if taken), "
    "unverified, and a link is mailed to it. With If-Match, a stale tag is a 412; a change "
    "that raced another from the same version is a 409 concurrent-change.",
    request_example=USER_UPDATE_EXAMPLE,
    response_example=USER_UPDATED_EXAMPLE,
    body=UserUpdateSchema(),
    response=UserSchema(),
    conditional=True,
    problems=(409, WRONG_PASSWORD, 429),
)
def update_user(user_id: int, body: Any) -> Response:
    actor = require_principal()
    if not ACCOUNT_FIELDS.issuperset(body):
        check_verified(actor, None)
    service = _service()
    if "password" in body or "current_password" in body:
        PASSWORD_HASHES.reserve()
    if service.needs_current_password(user_id, body, actor):
        stored = current_database().read_on_primary(lambda reader: service.find_credentials(user_id, reader))
        failures = FailureBudget(
            ("RATELIMIT_TOKEN_FAILURES_PER_EMAIL_AND_ADDRESS", lambda: f"{stored.email}|{client_address()}"),
            ("RATELIMIT_TOKEN_FAILURES_PER_EMAIL", lambda: stored.email),
            PASSWORD_FAILURES_PER_ADDRESS,
        )
        refund = failures.reserve()
        service.check_current_password(stored, body["current_password"])
        refund()
    return _entity(service.update(user_id, body, if_match_versions(), actor))


@bp.delete(f"/users/{ID}")
@operation(
    summary="Delete a user (soft) and what is theirs",
    tag="users",
    description="Marks the user deleted and, in the same transaction, their posts and the comments "
    "on them; the email is free again. Answers 204 with no content.",
    status=204,
    conditional=True,
)
def delete_user(user_id: int) -> Response:
    _service().delete(user_id, if_match_versions(), require_principal())
    return no_content()


users_cli = AppGroup("users", help="Users.")


@users_cli.command("promote")
@click.argument("email")
def promote(email: str) -> None:
    """Make the user with this email an admin."""
    _set_admin(email, True)


@users_cli.command("demote")
@click.argument("email")
def demote(email: str) -> None:
    """Take admin rights away from the user with this email."""
    _set_admin(email, False)


def _set_admin(email: str, is_admin: bool) -> None:
    try:
        with unit_of_work() as uow:
            user = UserService(uow.session).set_admin(normalize_email(email), is_admin)
    except NotFound as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"{user.email} is {'now' if is_admin else 'no longer'} an admin.")


resource = Resource(name="users", blueprint=bp, commands=(users_cli,))
