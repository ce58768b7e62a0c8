"""Create idempotency_records: stored responses of POSTs sent with an Idempotency-Key.

The key is the primary key, so the database decides which of two requests with one
key stored its response. expires_at is indexed for `flask idempotency purge`.

Revision ID: 21259cbcd5ed
Revises: 6c54bf88e9f9
Create Date: 2026-11-23 09:39:10.124051+00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "21259cbcd5ed"
down_revision = "6c54bf88e9f9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.SmallInteger(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_records")),
    )
    op.create_index(
        op.f("ix_idempotency_records_expires_at"), "idempotency_records", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_records_expires_at"), table_name="idempotency_records")
    op.drop_table("idempotency_records")
