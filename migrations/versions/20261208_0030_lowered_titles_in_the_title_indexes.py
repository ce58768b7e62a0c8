"""lower(title) stored in the two posts indexes the title searches scan.

q and post_title filter on lower(title) LIKE '%...%'. For a common word the trigram index
cannot stop early, so the capped count of q scans ix_posts_title_id_live and post_title
checks each user's posts on ix_posts_user_id_created_at_id_live, both index-only, and
both lowered every title they read: in a non-C locale lower() costs several times the
LIKE. With lower(title) as the last key column, PostgreSQL reads it from the index
instead. The columns before it keep their order, so the sorts and a user's posts use the
indexes as before. docs/indexes.md has the measurements.

Both databases: SQLite builds the same keys (without PostgreSQL's INCLUDE), so the models
describe one index on each. On a large live table build the new indexes with CREATE INDEX
CONCURRENTLY under another name first, then swap them (outside a transaction).

Revision ID: 9b3e61f0c2d4
Revises: 5d1e0a7c3b92
Create Date: 2026-12-08 00:30:00.000000+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "9b3e61f0c2d4"
down_revision = "5d1e0a7c3b92"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
LOWER_TITLE = sa.text("lower(title)")
# name, key columns, INCLUDE columns (PostgreSQL only)
INDEXES = (
    ("ix_posts_user_id_created_at_id_live", ["user_id", "created_at", "id"], ["title"]),
    ("ix_posts_title_id_live", ["title", "id"], []),
)


def _create(name: str, columns: list[str | sa.TextClause], include: list[str]) -> None:
    op.create_index(
        name, "posts", columns, postgresql_where=LIVE, sqlite_where=LIVE, postgresql_include=include
    )


def upgrade() -> None:
    for name, columns, include in INDEXES:
        op.drop_index(name, table_name="posts")
        _create(name, [*columns, LOWER_TITLE], include)


def downgrade() -> None:
    for name, columns, include in INDEXES:
        op.drop_index(name, table_name="posts")
        _create(name, list(columns), include)
