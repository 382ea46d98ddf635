"""case lifecycle: case version, dispatches, follow-ups, department accounts, list indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_cases_created_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_cases_grid_created_id", ["grid_code", "created_at", "id"], unique=False)
        batch_op.create_index("ix_cases_state_created_id", ["state", "created_at", "id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
    op.create_table(
        "case_dispatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("department_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        sa.Column("dispatched_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_provisional", sa.Boolean(), nullable=False),
        sa.Column("acknowledged_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_dispatches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_dispatches_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_case_dispatches_department_case", ["department_code", "case_id"], unique=False
        )
        batch_op.create_index(
            "ix_case_dispatches_open_deadline", ["reported_at", "deadline_at"], unique=False
        )
    op.create_table(
        "case_follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("satisfaction", sa.String(length=24), nullable=False),
        sa.Column("resident_comment", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_follow_ups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_follow_ups_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_follow_ups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_follow_ups_case_id"))
    op.drop_table("case_follow_ups")
    with op.batch_alter_table("case_dispatches", schema=None) as batch_op:
        batch_op.drop_index("ix_case_dispatches_open_deadline")
        batch_op.drop_index("ix_case_dispatches_department_case")
        batch_op.drop_index(batch_op.f("ix_case_dispatches_case_id"))
    op.drop_table("case_dispatches")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("department")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_state_created_id")
        batch_op.drop_index("ix_cases_grid_created_id")
        batch_op.drop_index("ix_cases_created_id")
        batch_op.drop_column("version")
