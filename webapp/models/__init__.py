"""All models, imported here so Alembic's autogenerate sees every table."""

from webapp.models.idempotency import IDEMPOTENCY_KEY_CONSTRAINT, IdempotencyRecord
from webapp.models.post import Post
from webapp.models.user import USERS_EMAIL_UNIQUE_INDEX, User

__all__ = ["IDEMPOTENCY_KEY_CONSTRAINT", "USERS_EMAIL_UNIQUE_INDEX", "IdempotencyRecord", "Post", "User"]
