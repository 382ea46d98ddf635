"""case open deadline: earliest unreported dispatch deadline on the case, for the overdue filter

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("open_deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_open_deadline_at"), ["open_deadline_at"], unique=False)
    op.execute(
        "UPDATE cases SET open_deadline_at = (SELECT min(d.deadline_at) FROM case_dispatches d "
        "WHERE d.case_id = cases.id AND d.reported_at IS NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_open_deadline_at"))
        batch_op.drop_column("open_deadline_at")
