"""Account routes: verify an email, ask for another link, reset a forgotten password."""

from __future__ import annotations

from typing import Any

import click
from flask import Blueprint, Response, current_app
from flask.cli import AppGroup

from webapp.core.auth import open_to_unverified, public, require_principal
from webapp.core.db import current_database, get_session
from webapp.core.db.purge import purge_in_batches
from webapp.core.errors import InvalidRequest
from webapp.core.http import no_content
from webapp.core.idempotency.http import idempotent
from webapp.core.operations import operation
from webapp.core.passwords import hash_password
from webapp.core.ratelimits import PASSWORD_HASHES, body_field, rate_limit, spends
from webapp.core.resource import Resource
from webapp.resources.accounts.model import INVALID_TOKEN
from webapp.resources.accounts.pages import pages
from webapp.resources.accounts.schemas import (
    EMAIL_VERIFICATION_EXAMPLE,
    PASSWORD_RESET_COMPLETE_EXAMPLE,
    PASSWORD_RESET_EXAMPLE,
    EmailVerificationSchema,
    PasswordResetCompleteSchema,
    PasswordResetSchema,
)
from webapp.resources.accounts.service import INVALID, AccountService
from webapp.resources.users.model import EMAIL_TAKEN

# No url_prefix: the API's routes name /api/v1 themselves, next to the pages their mails link to.
bp = Blueprint("accounts", __name__)
bp.register_blueprint(pages)
API = "/api/v1"


def _service() -> AccountService:
    return AccountService(get_session())


def _accepted() -> Response:
    """A 202 with no body: the work is queued, and there is nothing more to say."""
    response = no_content()
    response.status_code = 202
    return response


@bp.post(f"{API}/email-verifications")
@public
@idempotent
@operation(
    summary="Verify an email with the token from its mail",
    tag="accounts",
    description="The token comes from the link in a verification mail (`token=` in its query). "
    "It makes the address it was mailed to the user's verified email: their email "
    "(`email_verified` becomes true), or the new email they asked for with PATCH, which then "
    "replaces the old one (409 email-taken if another user has it by now). A token works "
    "once, until it expires (EMAIL_VERIFICATION_TTL_HOURS, 48 by default); an unknown, "
    "expired or used one is a 400 invalid-token. Needs no bearer token: the token is the "
    "proof. Answers 204.",
    request_example=EMAIL_VERIFICATION_EXAMPLE,
    body=EmailVerificationSchema(),
    status=204,
    problems=(INVALID_TOKEN, EMAIL_TAKEN),
)
def verify_email(body: Any) -> Response:
    _service().verify_email(body["token"])
    return no_content()


@bp.post(f"{API}/email-verifications/resend")
@open_to_unverified
@rate_limit("RATELIMIT_ACCOUNT_MAILS_PER_ADDRESS")
@idempotent
@operation(
    summary="Mail another verification link",
    tag="accounts",
    description="A new link to the caller's own email if it is not verified yet, and to the "
    "pending email if they asked to change it; earlier links keep working until they "
    "expire. Answers 202 with no content (nothing is sent for an email verified already). "
    "Limited per client address (429 with `Retry-After`).",
    status=202,
    problems=(401, 429),
)
def resend_verification() -> Response:
    _service().resend_verification(require_principal())
    return _accepted()


@bp.post(f"{API}/password-resets")
@public
@rate_limit("RATELIMIT_ACCOUNT_MAILS_PER_EMAIL", key=body_field("email"))
@rate_limit("RATELIMIT_ACCOUNT_MAILS_PER_ADDRESS")
@idempotent
@operation(
    summary="Ask for a password reset mail",
    tag="accounts",
    description="Answers 202 with no content whether or not the address belongs to an account, "
    "in the same time: the request only queues the work, which is the same for every "
    "address. If it belongs to a live, active user, they get a mail with a link that sets a "
    "new password (POST /api/v1/password-resets/complete), valid once for "
    "PASSWORD_RESET_TTL_MINUTES (60 by default). Limited per email and per client "
    "address (429 with `Retry-After`).",
    request_example=PASSWORD_RESET_EXAMPLE,
    body=PasswordResetSchema(),
    status=202,
    problems=(429,),
)
def request_password_reset(body: Any) -> Response:
    _service().request_password_reset(body["email"])
    return _accepted()


@bp.post(f"{API}/password-resets/complete")
@public
@spends(PASSWORD_HASHES)
@idempotent
@operation(
    summary="Set a new password with the token from a reset mail",
    tag="accounts",
    description="The token from the reset mail's link and the new password (8..128 characters). "
    "The password is set, every bearer token of the user stops working (sign in again), "
    "every other reset link of theirs too, and their email counts as verified. A token "
    "works once, until it expires; an unknown, expired or used one is a 400 invalid-token. "
    "Answers 204.",
    request_example=PASSWORD_RESET_COMPLETE_EXAMPLE,
    body=PasswordResetCompleteSchema(),
    status=204,
    problems=(INVALID_TOKEN,),
)
def complete_password_reset(body: Any) -> Response:
    service = _service()
    token = body["token"]
    if not current_database().read_on_primary(lambda reader: service.reset_token_usable(token, reader)):
        raise InvalidRequest(INVALID, problem_type=INVALID_TOKEN)
    # Hashed before the request's first statement: no transaction (and on SQLite no write
    # lock) is held while it runs. The token is checked again, and spent, in the transaction.
    hashed = hash_password(body["password"], current_app.config["PASSWORD_HASH_METHOD"])
    service.complete_password_reset(token, hashed)
    return no_content()


accounts_cli = AppGroup("accounts", help="Account tokens (email verification, password reset).")


@accounts_cli.command("purge")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
def purge_expired_account_tokens(batch_size: int) -> None:
    """Delete expired verification and reset tokens (safe to run from cron)."""
    total = purge_in_batches(
        lambda session, now, size: AccountService(session).purge_expired(now, size), batch_size
    )
    click.echo(f"Purged {total} expired account token(s).")


resource = Resource(name="accounts", blueprint=bp, commands=(accounts_cli,))
