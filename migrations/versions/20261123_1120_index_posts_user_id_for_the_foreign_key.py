"""Index posts.user_id for the foreign key, over every row.

The previous migration replaced this index with a partial one (live rows only). A
foreign key check cannot use a partial index: deleting a user made PostgreSQL scan all
of posts once per deleted row (1,000 post-less users on 100,000 posts: minutes).
docs/indexes.md has the figures.

On a large live table, build it with CREATE INDEX CONCURRENTLY instead.

Revision ID: 0054e81ef398
Revises: a99778c053f2
Create Date: 2026-11-23 11:20:29.442622+00:00
"""

from alembic import op

revision = "0054e81ef398"
down_revision = "a99778c053f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_posts_user_id"), "posts", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_posts_user_id"), table_name="posts")
