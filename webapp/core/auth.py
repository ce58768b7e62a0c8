"""Who is calling: bearer tokens (RFC 6750) resolved to a Principal, and the ownership rule.

Core knows no user or token table. A resource registers an ``Authenticator`` (the tokens
resource does) and declares who owns each of its rows (``owner_id`` on the model);
core parses the header, asks the authenticator once per request, and refuses writes
that carry no valid token unless the route is declared public.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from flask import Request
from sqlalchemy import Connection

from webapp.core.context import current_flask_app, current_request
from webapp.core.db import current_database
from webapp.core.errors import EMAIL_UNVERIFIED, Forbidden, InvalidRequest, Unauthenticated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Bearer realm="api"'
# RFC 6750 2.1: b64token. Anything else in the header is a malformed request.
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
_MAX_TOKEN_LENGTH = 256
_PRINCIPAL = "webapp.principal"

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user, whether an admin, the credential used, and whether
    the user proved their email (REQUIRE_VERIFIED_EMAIL refuses other writes until then)."""

    user_id: int
    is_admin: bool
    credential_id: int
    email_verified: bool = True


class Owned(Protocol):
    """A row that belongs to one user: each resource's model says which (``owner_id``)."""

    @property
    def owner_id(self) -> int: ...


class Authenticator(Protocol):
    """Turns a presented token into a Principal, read on ``reader`` (a connection of the
    primary's read pool); None if it is not valid."""

    def authenticate(self, reader: Connection, token: str) -> Principal | None: ...


def public(view: ViewT) -> ViewT:
    """Mark a write route open to callers without a token (sign-up, token creation)."""
    view.public = True  # type: ignore[attr-defined]
    return view


def is_public(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, "public", False))


def open_to_unverified(view: ViewT) -> ViewT:
    """Mark a write an unverified user may make even with REQUIRE_VERIFIED_EMAIL on (the
    writes that verify, change or recover the email, and signing out)."""
    view.open_to_unverified = True  # type: ignore[attr-defined]
    return view


def check_verified(principal: Principal, view: Callable[..., Any] | None) -> None:
    """REQUIRE_VERIFIED_EMAIL: an unverified user's write is a 403, unless its view is open to them."""
    if principal.email_verified or not current_flask_app().config.get("REQUIRE_VERIFIED_EMAIL"):
        return
    if view is not None and getattr(view, "open_to_unverified", False):
        return
    raise Forbidden(
        "Verify your email before changing anything: open the link in the verification mail.",
        problem_type=EMAIL_UNVERIFIED,
    )


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = REALM
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def _presented_token(environ: dict[str, Any]) -> str | None:
    # The environ's key, as request.headers would read it, without two lookups' worth of
    # LocalProxy and header-name folding on every request.
    header = environ.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    match = _BEARER.match(header)
    if match is None or len(match.group(1)) > _MAX_TOKEN_LENGTH:
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <token>'.",
            headers=_challenge("invalid_request", "malformed Authorization header"),
        )
    return match.group(1)


def current_principal() -> Principal | None:
    """The caller, or None when the request carries no token; a bad token is a 401.

    Resolved once per request and only when asked: an anonymous read sends no extra
    statement, and an authenticated request one (the token lookup).
    """
    # Kept in the WSGI environ, not flask.g: g belongs to the app context, which a test
    # (or a CLI command) may keep open across several requests.
    environ = current_request().environ
    if _PRINCIPAL in environ:
        found: Principal | None = environ[_PRINCIPAL]
        return found
    token = _presented_token(environ)
    principal: Principal | None = None
    if token is not None:
        authenticator: Authenticator | None = current_flask_app().extensions.get("authenticator")
        if authenticator is not None:
            # Not the request's session: its first statement would open the write
            # transaction (and SQLite's write lock) before the view, which may first hash
            # passwords for seconds; and a replica may not have the token yet.
            principal = current_database().read_on_primary(
                lambda reader: authenticator.authenticate(reader, token)
            )
        if principal is None:
            raise Unauthenticated(
                "The bearer token is invalid, expired or revoked.",
                headers=_challenge("invalid_token", "the token is invalid, expired or revoked"),
            )
    environ[_PRINCIPAL] = principal
    return principal


def require_principal() -> Principal:
    """The caller; a 401 with a challenge when the request carries no token."""
    principal = current_principal()
    if principal is None:
        raise Unauthenticated(
            "This request needs a bearer token (POST /api/v1/tokens).", headers=_challenge()
        )
    return principal


def authorize_change(actor: Principal, owned: Owned) -> None:
    """Only the owner or an admin may change a row; anyone else is a 403 (nothing is written)."""
    if not actor.is_admin and actor.user_id != owned.owner_id:
        raise Forbidden("Only its owner or an admin may change this.")


def authorize_acting_as(actor: Principal, user_id: int) -> None:
    """Writing on behalf of ``user_id`` (a post's author): only that user or an admin."""
    if not actor.is_admin and actor.user_id != user_id:
        raise Forbidden("You may only act as yourself.")


def require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise Forbidden("Only an admin may do this.")


def refuse_token_in_query_string() -> None:
    """before_request: ``?access_token=`` is a 400, never served (RFC 6750 2.3 is optional,
    and a token in a URL ends up in access logs, proxies and browser history)."""
    query = current_request().environ.get("QUERY_STRING", "")
    if "access_token" in query and "access_token" in current_request().args:
        raise InvalidRequest(
            "Send the token in the Authorization header (Bearer), never in the URL: "
            "URLs are written to logs. Treat a token sent this way as leaked."
        )


def enforce_authentication() -> None:
    """before_request: a presented token is checked on every request (a dead one is a 401,
    even on a read); a write without one is refused unless its view is declared public."""
    # Read once, from the environ: each flask.request attribute costs a LocalProxy
    # lookup, and werkzeug's header lookup raises and catches a KeyError when absent.
    current = current_request()
    if "HTTP_AUTHORIZATION" in current.environ:
        view = _view_of(current)
        if view is not None and is_public(view):
            # Sign-in and sign-up need no token: a stale one a client still sends must
            # not lock it out of getting a new one. The caller is then anonymous.
            try:
                current_principal()
            except Unauthenticated:
                current.environ[_PRINCIPAL] = None
            return
        principal = current_principal()
        if principal is not None and not principal.email_verified and current.method not in SAFE_METHODS:
            check_verified(principal, view)
        return
    if current.method in SAFE_METHODS:
        return  # an anonymous read: nothing to check, no view to look up
    view = _view_of(current)
    if view is None or is_public(view):
        return
    require_principal()


def _view_of(current: Request) -> Callable[..., Any] | None:
    endpoint = current.endpoint
    return current_flask_app().view_functions.get(endpoint) if endpoint else None
