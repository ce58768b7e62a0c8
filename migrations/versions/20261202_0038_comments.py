"""Comments: a user's remark on a post, soft-deleted with its post or its author.

Revision ID: ced61da63dbd
Revises: 46c63cbf136f
Create Date: 2026-12-02 00:38:00.000000+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "ced61da63dbd"
down_revision = "46c63cbf136f"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_comments_post_id_posts")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_comments_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    # Total indexes on both foreign keys: deleting a post or a user checks them.
    op.create_index(op.f("ix_comments_post_id"), "comments", ["post_id"])
    op.create_index(op.f("ix_comments_user_id"), "comments", ["user_id"])
    # A post's live comments, by id or by created_at: keyset pages start at the cursor.
    op.create_index(
        "ix_comments_post_id_id_live", "comments", ["post_id", "id"], postgresql_where=LIVE, sqlite_where=LIVE
    )
    op.create_index(
        "ix_comments_post_id_created_at_id_live",
        "comments",
        ["post_id", "created_at", "id"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_table("comments")
