"""jobs.trace_context: the W3C trace context of the span that enqueued a job.

When the app traces, each run of the job is a span under that context (the request that
enqueued it), whichever runner claims it. Nullable: jobs enqueued outside a trace, or
before this column, have none. ADD COLUMN without a default is in place on both
databases.

Revision ID: 8d472ca3f423
Revises: 9b3e61f0c2d4
Create Date: 2026-12-08 00:50:00.000000+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "8d472ca3f423"
down_revision = "9b3e61f0c2d4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ has it), no batch rebuild of the table.
    op.drop_column("jobs", "trace_context")
