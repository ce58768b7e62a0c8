"""Domain errors: raised by services and repositories, translated to HTTP in core/problems.py."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a client can cause; ``status`` is its HTTP meaning."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


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
