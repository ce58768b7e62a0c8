"""Indexes for list sorts and filters.

Measured on 100,000 posts before being chosen; docs/indexes.md has the figures.
- B-trees over live rows (WHERE deleted_at IS NULL, as every list query says) on each
  sort key plus the id tie-breaker, so keyset pages start at the cursor in the index.
- posts (user_id, created_at, id) replaces the plain user_id index: it serves every
  user_id lookup as well, and a user's post count as an index-only scan.
- pg_trgm GIN indexes on lower(title), lower(email), lower(full_name) for the
  substring filters. PostgreSQL only: SQLite has neither GIN nor pg_trgm, and its
  LIKE scan over a development database needs no index.

On a large live table, build these with CREATE INDEX CONCURRENTLY instead (outside a
transaction), so writes are not blocked while they build.

Revision ID: a99778c053f2
Revises: 21259cbcd5ed
Create Date: 2026-11-23 09:52:56.937779+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "a99778c053f2"
down_revision = "21259cbcd5ed"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")

SORT_INDEXES = [
    ("ix_posts_user_id_created_at_id_live", "posts", ["user_id", "created_at", "id"]),
    ("ix_posts_created_at_id_live", "posts", ["created_at", "id"]),
    ("ix_posts_title_id_live", "posts", ["title", "id"]),
    ("ix_users_email_id_live", "users", ["email", "id"]),
    ("ix_users_full_name_id_live", "users", ["full_name", "id"]),
    ("ix_users_created_at_id_live", "users", ["created_at", "id"]),
]

TRIGRAM_INDEXES = [
    ("ix_posts_title_lower_trgm_live", "posts", "title"),
    ("ix_users_email_lower_trgm_live", "users", "email"),
    ("ix_users_full_name_lower_trgm_live", "users", "full_name"),
]


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for name, table, columns in SORT_INDEXES:
        op.create_index(name, table, columns, postgresql_where=LIVE, sqlite_where=LIVE)
    op.drop_index("ix_posts_user_id", table_name="posts")

    if _is_postgresql():
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, column in TRIGRAM_INDEXES:
            label = f"{column}_lower"
            op.create_index(
                name,
                table,
                [sa.literal_column(f"lower({column})").label(label)],
                postgresql_using="gin",
                postgresql_ops={label: "gin_trgm_ops"},
                postgresql_where=LIVE,
            )


def downgrade() -> None:
    if _is_postgresql():
        for name, table, _column in reversed(TRIGRAM_INDEXES):
            op.drop_index(name, table_name=table)
        # The extension stays: other objects may have come to depend on it since.

    op.create_index("ix_posts_user_id", "posts", ["user_id"])
    for name, table, _columns in reversed(SORT_INDEXES):
        op.drop_index(name, table_name=table)
