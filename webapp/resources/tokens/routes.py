"""Tokens routes: sign in (POST /tokens), sign out (DELETE /tokens/current), and the
caller's sessions: list them, end one, end all."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from flask import Blueprint, Response, current_app
from flask.cli import AppGroup
from sqlalchemy import RowMapping

from webapp.core.auth import open_to_unverified, public, require_principal
from webapp.core.db import current_database, get_session
from webapp.core.db.purge import purge_in_batches
from webapp.core.http import json_response, no_content
from webapp.core.lists import PageRequest
from webapp.core.lists.http import Listing, list_response
from webapp.core.operations import operation
from webapp.core.ratelimits import (
    PASSWORD_HASHES,
    FailureBudget,
    body_field,
    client_address,
    counts_failures,
    email_and_address,
    spends,
)
from webapp.core.resource import Resource
from webapp.resources.tokens.schemas import (
    SESSION_LIST_EXAMPLE,
    TOKEN_CREATE_EXAMPLE,
    TOKEN_EXAMPLE,
    SessionListSchema,
    SessionSchema,
    TokenCreateSchema,
    TokenSchema,
)
from webapp.resources.tokens.service import TokenAuthenticator, TokenService

bp = Blueprint("tokens", __name__, url_prefix="/api/v1")

token_schema = TokenSchema()
session_schema = SessionSchema()
SESSIONS = Listing("tokens", TokenService.lister)
TOKEN_ID = "<id:token_id>"  # see IdConverter: a 404, never a 405, for ids that cannot exist
# Failed sign-ins (settings hold the rates): per account from one address, the budget an
# attacker at one address exhausts without locking the owner out; per account from
# anywhere, a higher ceiling a distributed guesser meets; per client address, whatever the account.
SIGN_IN_FAILURES = FailureBudget(
    ("RATELIMIT_TOKEN_FAILURES_PER_EMAIL_AND_ADDRESS", email_and_address),
    ("RATELIMIT_TOKEN_FAILURES_PER_EMAIL", body_field("email")),
    ("RATELIMIT_TOKEN_FAILURES_PER_ADDRESS", client_address),
)


def _service() -> TokenService:
    return TokenService(
        get_session(),
        ttl=timedelta(hours=current_app.config["TOKEN_TTL_HOURS"]),
        password_method=current_app.config["PASSWORD_HASH_METHOD"],
    )


# Not @idempotent: a replay would have to store the token itself, and a retried sign-in
# that issues a second token harms no one.
@bp.post("/tokens")
@public
@spends(PASSWORD_HASHES)
@counts_failures(SIGN_IN_FAILURES)
@operation(
    summary="Sign in: a bearer token for an email and password",
    tag="tokens",
    description="A token for a live, active user, valid for TOKEN_TTL_HOURS (24 by default): send "
    "it as `Authorization: Bearer <token>`. Every failure is the same 401, in the same time. "
    "Failed attempts are limited per email and per client address (429 with `Retry-After`).",
    request_example=TOKEN_CREATE_EXAMPLE,
    response_example=TOKEN_EXAMPLE,
    body=TokenCreateSchema(),
    response=TokenSchema(),
    status=201,
    problems=(401, 429),
)
def create_token(body: Any) -> Response:
    service = _service()
    account = current_database().read_on_primary(lambda reader: service.find_account(body["email"], reader))
    issued = service.issue(account, body["password"])
    response = json_response(token_schema.dump(issued), 201)
    # RFC 6749 5.1: an answer that carries a credential must not be stored by caches.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tokens")
@operation(
    summary="List your sessions: the live tokens of the caller",
    tag="tokens",
    description="Every token of the caller that still works, with when it was issued and when it "
    "expires; `current` marks the one this request carries. Never the tokens themselves (only "
    "their hashes are stored). Needs a bearer token (401 without). Sort keys: `id`, "
    "`created_at`, `expires_at`.",
    response_example=SESSION_LIST_EXAMPLE,
    listing=SESSIONS,
    response=SessionListSchema(),
    problems=(401,),
)
def list_tokens(page: PageRequest) -> Response:
    principal = require_principal()
    found = current_database().read_on_primary(lambda reader: TokenService.sessions(principal, page, reader))

    def dump(rows: list[RowMapping]) -> list[dict[str, Any]]:
        mine = principal.credential_id
        return [session_schema.dump({**row, "current": row["id"] == mine}) for row in rows]

    return list_response(SESSIONS, found, page, dump)


@bp.delete(f"/tokens/{TOKEN_ID}")
@open_to_unverified
@operation(
    summary="End one of your sessions",
    tag="tokens",
    description="Revokes one of the caller's live tokens (ids from GET /api/v1/tokens); it stops "
    "working at once. Another user's token, or one that no longer works, is a 404. Answers 204.",
    status=204,
)
def delete_token(token_id: int) -> Response:
    _service().revoke_session(require_principal(), token_id)
    return no_content()


@bp.delete("/tokens")
@open_to_unverified
@operation(
    summary="Sign out everywhere",
    tag="tokens",
    description="Revokes every live token of the caller, the one this request carries included. Answers 204.",
    status=204,
)
def delete_all_tokens() -> Response:
    _service().revoke_all(require_principal())
    return no_content()


@bp.delete("/tokens/current")
@open_to_unverified
@operation(
    summary="Sign out: revoke the token this request carries",
    tag="tokens",
    description="The token of this request stops working at once; the user's other tokens live on. "
    "Answers 204.",
    status=204,
)
def delete_current_token() -> Response:
    _service().revoke(require_principal())
    return no_content()


tokens_cli = AppGroup("tokens", help="Access tokens.")


@tokens_cli.command("purge")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
def purge_expired_tokens(batch_size: int) -> None:
    """Delete expired tokens (safe to run from cron)."""
    total = purge_in_batches(
        lambda session, now, size: TokenService(session).purge_expired(now, size), batch_size
    )
    click.echo(f"Purged {total} expired token(s).")


resource = Resource(name="tokens", blueprint=bp, commands=(tokens_cli,), authenticator=TokenAuthenticator())
