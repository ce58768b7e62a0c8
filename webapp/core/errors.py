"""Domain errors: raised by services and repositories, translated to HTTP in core/problems.py."""

from __future__ import annotations

from dataclasses import dataclass

PROBLEMS_PATH = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    """A problem a client may branch on: its stable ``type`` URI, served as a page by /problems/<slug>."""

    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        # A relative reference (RFC 9457 3.1.1): it resolves against the request's URL,
        # so it names this deployment's page whatever host serves it.
        return PROBLEMS_PATH + self.slug


PROBLEM_TYPES: dict[str, ProblemType] = {}


def problem_type(slug: str, status: int, title: str, description: str) -> ProblemType:
    """Declare a problem type once, at import; a slug means one thing for the life of the API."""
    declared = ProblemType(slug, status, title, description)
    if PROBLEM_TYPES.setdefault(slug, declared) != declared:
        raise ValueError(f"problem type {slug!r} is declared twice, differently")
    return declared


VALIDATION_FAILED = problem_type(
    "validation-failed",
    422,
    "Validation failed",
    "The body failed validation: `errors` maps each field (a dotted path for nested input) to "
    "its messages. Fix those fields and send again.",
)
UNIQUE_CONFLICT = problem_type(
    "unique-conflict",
    409,
    "A unique value is taken",
    "The request would give a value that must be unique to a second row. Choose another value.",
)
CONCURRENT_CHANGE = problem_type(
    "concurrent-change",
    409,
    "Changed concurrently",
    "Another request changed the same resource first, from the same version. Fetch it again "
    "(a new ETag), reapply the change and retry.",
)
PRECONDITION_FAILED = problem_type(
    "precondition-failed",
    412,
    "Stale version",
    "If-Match does not name the resource's current version: someone changed it since you read it. "
    "Fetch it again and retry with the new ETag.",
)
PRECONDITION_REQUIRED = problem_type(
    "precondition-required",
    428,
    "If-Match required",
    "A change or delete must say which version it applies to: send If-Match with the ETag you read.",
)
TOKEN_INVALID = problem_type(
    "token-invalid",
    401,
    "Bearer token missing or invalid",
    "The request needs `Authorization: Bearer <token>`, and the token given is missing, malformed, "
    "unknown, expired or revoked. Get a new token.",
)
FORBIDDEN = problem_type(
    "forbidden",
    403,
    "Not allowed",
    "The token is valid, but its user may not do this (not the owner, not an admin). Retrying will not help.",
)
RATE_LIMITED = problem_type(
    "rate-limited",
    429,
    "Too many requests",
    "Too many requests of this kind from this client or for this account: wait `Retry-After` seconds.",
)
IDEMPOTENCY_IN_PROGRESS = problem_type(
    "idempotency-key-in-progress",
    409,
    "Idempotency-Key in use",
    "A request with the same Idempotency-Key is still running. Retry after a moment to get its answer.",
)
IDEMPOTENCY_KEY_REUSED = problem_type(
    "idempotency-key-reused",
    422,
    "Idempotency-Key reused",
    "The Idempotency-Key was already used for a different request (caller, method, path, query or body). "
    "Use a new key for a new request.",
)
INVALID_CURSOR = problem_type(
    "invalid-cursor",
    400,
    "Invalid cursor",
    "The cursor is malformed, tampered with, or was made for another list or sort order. "
    "Start again from the first page.",
)
PAGE_BEYOND_COUNT = problem_type(
    "page-beyond-count",
    400,
    "Page beyond the counted rows",
    "Offset pages (`page`) reach only as far as a list counts its matches (10,000 unless the "
    "server says otherwise: `meta.total` with `meta.total_capped: true`). Go further with "
    "cursor pagination: follow `meta.next_cursor` from page to page, or narrow the list with filters.",
)
DATABASE_UNAVAILABLE = problem_type(
    "database-unavailable",
    503,
    "Database unavailable",
    "The database cannot be reached, is too busy or too slow. Nothing was written; retry after "
    "`Retry-After` seconds.",
)
REQUEST_TOO_LARGE = problem_type(
    "request-too-large",
    413,
    "Request too large",
    "The body is larger than the server accepts (1 MiB by default). Send less, e.g. split a bulk request.",
)

EMAIL_UNVERIFIED = problem_type(
    "email-unverified",
    403,
    "Email not verified",
    "This server accepts writes only from users who verified their email. Open the link in the "
    "verification mail (POST /api/v1/email-verifications/resend sends a new one), then retry.",
)


class DomainError(Exception):
    """Base of every error a client can cause; ``status`` is its HTTP meaning."""

    status = 400
    title = "Bad Request"
    problem_type: ProblemType | None = None  # None: about:blank, the status says it all

    def __init__(
        self,
        detail: str,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        problem_type: ProblemType | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        if problem_type is not None:
            self.problem_type = problem_type


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
    problem_type = PRECONDITION_FAILED


class ValidationFailed(DomainError):
    status = 422
    title = "Unprocessable Content"
    problem_type = VALIDATION_FAILED


class Unauthenticated(DomainError):
    """No valid credentials where they are required; a 401 always carries a challenge."""

    status = 401
    title = "Unauthorized"
    problem_type = TOKEN_INVALID

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers or {"WWW-Authenticate": 'Bearer realm="api"'})


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    problem_type = FORBIDDEN


class RateLimited(DomainError):
    status = 429
    title = "Too Many Requests"
    problem_type = RATE_LIMITED


class PreconditionRequired(DomainError):
    status = 428
    title = "Precondition Required"
    problem_type = PRECONDITION_REQUIRED
