"""soft merges through an outbox (claim, planned revision, tries) on conflicts; dispatches can be
cancelled or reassigned (who, when, why, replacement), the department index covers their state

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("merge_rev", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    with op.batch_alter_table("case_dispatches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("reassigned_to", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reassigned_from", sa.Integer(), nullable=True))
        batch_op.drop_index("ix_case_dispatches_department_case")
        batch_op.create_index(
            "ix_case_dispatches_department_case", ["department_code", "case_id", "state"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("case_dispatches", schema=None) as batch_op:
        batch_op.drop_index("ix_case_dispatches_department_case")
        batch_op.create_index(
            "ix_case_dispatches_department_case", ["department_code", "case_id"], unique=False
        )
        batch_op.drop_column("reassigned_from")
        batch_op.drop_column("reassigned_to")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("cancelled_by")
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("attempts")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("merge_rev")
