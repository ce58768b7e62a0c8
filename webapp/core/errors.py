"""Domain errors: raised by services and repositories, translated to HTTP in core/problems.py."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a client can cause; ``status`` is its HTTP meaning."""

    status = 400
    title = "Bad Request"

    def __init__(
        self,
        detail: str,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class InvalidRequest(DomainError):
    status = 400
    title = "Bad Request"


class NotFound(DomainError):
    status = 404
    title = "Not Found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition Failed"


class ValidationFailed(DomainError):
    status = 422
    title = "Unprocessable Content"


class Unauthenticated(DomainError):
    """No valid credentials where they are required; a 401 always carries a challenge."""

    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers or {"WWW-Authenticate": 'Bearer realm="api"'})


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class PreconditionRequired(DomainError):
    status = 428
    title = "Precondition Required"
